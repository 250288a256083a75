//! What the three forge clients share: one HTTP client, the token header, path segments
//! percent-encoded onto the configured API base URL, and one mapping of error answers (401,
//! 403, 404, 409/422, rate limits) to [`ProviderError`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::ProviderError;

/// Wait when a forge rate-limits without saying how long (GitHub's advice for secondary limits).
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// A forge's REST API.
pub(super) struct ForgeHttp {
    pub forge: &'static str,
    client: reqwest::Client,
    base: url::Url,
    /// Header carrying the token, and how its value is built from the token.
    auth_header: &'static str,
    auth_value: SecretString,
    /// Headers the forge's documentation asks every call to send.
    fixed_headers: &'static [(&'static str, &'static str)],
    /// What a 404 means here, and the settings that name it.
    missing: String,
    missing_setting: &'static str,
}

/// A 2xx, 409 or 422 answer: its status and JSON body.
pub(super) struct Answer {
    pub status: StatusCode,
    pub json: Value,
}

impl ForgeHttp {
    pub fn new(
        forge: &'static str,
        base: &str,
        auth_header: &'static str,
        auth_value: SecretString,
        fixed_headers: &'static [(&'static str, &'static str)],
        missing: String,
        missing_setting: &'static str,
    ) -> Result<Self, ProviderError> {
        let unusable = |message: String| ProviderError::Unreachable { forge, message };
        let base = url::Url::parse(base)
            .ok()
            .filter(|u| !u.cannot_be_a_base())
            .ok_or_else(|| unusable(format!("`gitops.api_url` `{base}` is not an http(s) URL")))?;
        // No redirects: the token header would follow them to whatever host they name.
        let client = reqwest::Client::builder()
            .user_agent(concat!("meshport/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| unusable(e.to_string()))?;
        Ok(Self {
            forge,
            client,
            base,
            auth_header,
            auth_value,
            fixed_headers,
            missing,
            missing_setting,
        })
    }

    /// Calls `method` on the path made of `segments` (each percent-encoded, so a GitLab project
    /// path keeps its `/` inside one segment) with `query` and an optional JSON body. Any
    /// answer but 2xx becomes a [`ProviderError`].
    pub async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ProviderError> {
        let answer = self.send(method, segments, query, body).await?;
        Ok(answer.json)
    }

    /// Like [`Self::call`], but a 409 or 422 comes back as an answer for the caller to read.
    #[tracing::instrument(skip_all, fields(forge = self.forge, %method))]
    pub async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, ProviderError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| self.unreachable("the API URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self
            .client
            .request(method, url)
            .header(self.auth_header, self.auth_value.expose_secret());
        for (name, value) in self.fixed_headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(body).unwrap_or_default());
        }
        let response =
            request.send().await.map_err(|e| self.unreachable(e.without_url().to_string()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| self.unreachable(e.to_string()))?;
        let json: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status.is_success() || matches!(status.as_u16(), 409 | 422) {
            return Ok(Answer { status, json });
        }
        Err(self.error(status, &headers, &json))
    }

    /// The error for an answer that is not a success (and not left to the caller).
    pub fn error(&self, status: StatusCode, headers: &HeaderMap, json: &Value) -> ProviderError {
        let forge = self.forge;
        let message = message_of(json);
        match status.as_u16() {
            401 => ProviderError::Unauthorized { forge },
            403 | 429 if status == StatusCode::TOO_MANY_REQUESTS || is_rate_limited(headers) => {
                ProviderError::RateLimited { forge, retry_after: rate_limit_wait(headers) }
            }
            403 => ProviderError::Forbidden { forge, message },
            404 => ProviderError::NotFound {
                forge,
                what: self.missing.clone(),
                setting: self.missing_setting,
            },
            409 | 422 => ProviderError::Rejected { forge, status: status.as_u16(), message },
            other => ProviderError::Unexpected { forge, status: other, message },
        }
    }

    fn unreachable(&self, message: String) -> ProviderError {
        ProviderError::Unreachable { forge: self.forge, message }
    }
}

/// The forge's own explanation: `message` (GitHub, Gitea, GitLab; GitLab sometimes a list or
/// an object), else the body's start.
pub(super) fn message_of(json: &Value) -> String {
    let text = match json.get("message").or_else(|| json.get("error")) {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => json.as_str().map(str::to_owned).unwrap_or_else(|| json.to_string()),
    };
    let mut text: String = text.chars().take(300).collect();
    if let Some(errors) = json.get("errors").filter(|e| !e.is_null()) {
        text = format!("{text} ({errors})");
    }
    text
}

fn header<'a>(headers: &'a HeaderMap, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|name| headers.get(*name)?.to_str().ok())
}

/// GitHub signals an exhausted primary limit with `x-ratelimit-remaining: 0` and a secondary
/// one with `retry-after`; GitLab uses `ratelimit-remaining` and `retry-after`.
fn is_rate_limited(headers: &HeaderMap) -> bool {
    header(headers, &["x-ratelimit-remaining", "ratelimit-remaining"]) == Some("0")
        || headers.contains_key(http::header::RETRY_AFTER)
}

/// `retry-after` seconds, else the reset time (epoch seconds) from now, else a default.
fn rate_limit_wait(headers: &HeaderMap) -> Duration {
    if let Some(seconds) =
        header(headers, &["retry-after"]).and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Duration::from_secs(seconds.max(1));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    header(headers, &["x-ratelimit-reset", "ratelimit-reset"])
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|reset| Duration::from_secs(reset.saturating_sub(now).max(1)))
        .unwrap_or(DEFAULT_RATE_LIMIT_WAIT)
}

/// The text at `key`, or an unexpected-answer error naming it.
pub(super) fn text(json: &Value, key: &str, forge: &'static str) -> Result<String, ProviderError> {
    json.get(key).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| {
        ProviderError::Unexpected {
            forge,
            status: 200,
            message: format!("the answer has no `{key}`"),
        }
    })
}

/// The number at `key`, or an unexpected-answer error naming it.
pub(super) fn number(json: &Value, key: &str, forge: &'static str) -> Result<i64, ProviderError> {
    json.get(key).and_then(Value::as_i64).ok_or_else(|| ProviderError::Unexpected {
        forge,
        status: 200,
        message: format!("the answer has no number `{key}`"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_waits_follow_the_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "42".parse().unwrap());
        assert!(is_rate_limited(&headers));
        assert_eq!(rate_limit_wait(&headers), Duration::from_secs(42));

        let mut headers = HeaderMap::new();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
        headers.insert("x-ratelimit-reset", (now + 120).to_string().parse().unwrap());
        assert!(is_rate_limited(&headers));
        let wait = rate_limit_wait(&headers).as_secs();
        assert!((118..=120).contains(&wait), "{wait}");

        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-remaining", "12".parse().unwrap());
        assert!(!is_rate_limited(&headers), "a 403 with quota left is a permission problem");
    }

    #[test]
    fn the_forges_message_is_kept_short() {
        let json =
            serde_json::json!({"message": "Validation Failed", "errors": [{"code": "custom"}]});
        assert_eq!(message_of(&json), r#"Validation Failed ([{"code":"custom"}])"#);
        let long = Value::String("x".repeat(1000));
        assert_eq!(message_of(&long).len(), 300);
    }
}
