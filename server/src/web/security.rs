//! Browser-facing protections on every response: cross-site request forgery refused for every
//! state-changing request (server functions, forms, API), and the security headers, with a
//! Content-Security-Policy whose script nonce Leptos puts on each inline script it renders.

use std::sync::Arc;

use app::access::AppError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};

use crate::errors::ApiError;

/// What the protections need to know about the deployment.
#[derive(Clone, Debug)]
pub struct SecurityPolicy {
    /// `scheme://host[:port]` of the public URL: the only origin allowed to post.
    pub origin: String,
    /// Whether the public URL is https (then HSTS is sent).
    pub https: bool,
    /// Origins forms may lead to besides meshport: the identity provider (sign-out redirects).
    pub form_targets: Vec<String>,
    /// The public URL's host and port: the `Host` browsers must send.
    pub host: Option<(String, u16)>,
    /// Whether loopback names (`127.0.0.1`, `localhost`, `[::1]`) on any port are also meshport:
    /// when the public URL is itself on loopback (a laptop, `meshport dev`).
    pub loopback: bool,
}

impl SecurityPolicy {
    /// The policy for a public URL and identity provider issuer.
    pub fn new(public_url: &str, issuer: Option<&str>) -> Self {
        let origin_of =
            |url: &str| url::Url::parse(url).map(|u| u.origin().ascii_serialization()).ok();
        let parsed = url::Url::parse(public_url).ok();
        let host = parsed.as_ref().and_then(|u| {
            Some((
                u.host_str()?.trim_matches(['[', ']']).to_ascii_lowercase(),
                u.port_or_known_default()?,
            ))
        });
        // A public URL on `0.0.0.0` (the listen address, no public URL set) is reached through
        // a port-forward on loopback.
        let loopback = host.as_ref().is_some_and(|(name, _)| {
            is_loopback(name)
                || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_unspecified())
        });
        Self {
            origin: origin_of(public_url).unwrap_or_default(),
            https: public_url.starts_with("https://"),
            form_targets: issuer.and_then(origin_of).into_iter().collect(),
            host,
            loopback,
        }
    }

    /// Whether a request's `Host` names meshport. A page on another site that resolves its own
    /// name to meshport's address (DNS rebinding) sends its own name, and is refused.
    pub fn accepts_host(&self, host: &str) -> bool {
        let Some((public, public_port)) = &self.host else { return true };
        let host = host.to_ascii_lowercase();
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port))
                if !name.is_empty() && (name.ends_with(']') || !name.contains(':')) =>
            {
                (name, port.parse::<u16>().ok())
            }
            _ => (host.as_str(), None),
        };
        let name = name.trim_matches(['[', ']']);
        let default_port = if self.https { 443 } else { 80 };
        (name == public && port.unwrap_or(default_port) == *public_port)
            || (self.loopback && is_loopback(name))
    }

    /// The Content-Security-Policy: scripts only from meshport or carrying this response's
    /// nonce, WASM allowed to compile, no framing, no plugins, forms only to meshport and the
    /// identity provider.
    pub fn content_security_policy(&self, nonce: Option<&str>) -> String {
        let nonce = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
        let forms = self.form_targets.iter().map(|t| format!(" {t}")).collect::<String>();
        format!(
            "default-src 'self'; script-src 'self'{nonce} 'wasm-unsafe-eval'; style-src 'self'; \
             img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
             base-uri 'none'; frame-ancestors 'none'; form-action 'self'{forms}"
        )
    }
}

/// Refuses a state-changing request that a browser sent from another site. A browser tells
/// with `Sec-Fetch-Site`; older ones with `Origin`. Requests carrying an `Authorization` header
/// (API tokens) cannot be forged by a page and pass, and so do forges' webhook deliveries,
/// which carry no cookie and are checked by their signature instead.
pub async fn refuse_cross_site(
    State(policy): State<Arc<SecurityPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let webhook = request.uri().path().starts_with(super::pull_requests::WEBHOOK_PREFIX);
    if safe || webhook || request.headers().contains_key(header::AUTHORIZATION) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let same_site = match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => site == "same-origin",
        None => {
            headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
                == Some(policy.origin.as_str())
        }
    };
    if same_site {
        next.run(request).await
    } else {
        ApiError::from(AppError::Forbidden(
            "Cross-site request refused: the request must come from meshport's own pages.".into(),
        ))
        .into_response()
    }
}

/// Names only this machine can mean.
fn is_loopback(name: &str) -> bool {
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Refuses a request whose `Host` is not meshport's (421 Misdirected Request), except the probes
/// and the Prometheus scrape, which reach a pod by its address. Requests without a `Host`
/// (HTTP/1.0 tools, in-process tests) are no browser's and pass.
pub async fn refuse_foreign_host(
    State(policy): State<Arc<SecurityPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let probe = matches!(path, "/healthz" | "/readyz" | "/metrics");
    let host = request.headers().get(header::HOST).map(|h| h.to_str().unwrap_or_default());
    match host {
        Some(host) if !probe && !policy.accepts_host(host) => {
            tracing::warn!(host, "request for a foreign host refused");
            let body = serde_json::json!({
                "error": "misdirected",
                "detail": "This meshport answers only to its own address (its public URL).",
            });
            (StatusCode::MISDIRECTED_REQUEST, axum::Json(body)).into_response()
        }
        _ => next.run(request).await,
    }
}

/// Adds the security headers; a page rendered by Leptos already carries its nonced CSP.
pub async fn security_headers(
    State(policy): State<Arc<SecurityPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY)
        && let Ok(csp) = HeaderValue::from_str(&policy.content_security_policy(None))
    {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if policy.https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_nonce_and_the_provider() {
        let policy = SecurityPolicy::new(
            "https://meshport.example.com/",
            Some("https://id.example.com/realms/shop"),
        );
        assert_eq!(policy.origin, "https://meshport.example.com");
        assert!(policy.https);
        let csp = policy.content_security_policy(Some("abc123"));
        assert!(csp.contains("script-src 'self' 'nonce-abc123' 'wasm-unsafe-eval';"), "{csp}");
        assert!(csp.ends_with("form-action 'self' https://id.example.com"), "{csp}");
        assert!(!csp.contains("unsafe-inline"));
    }

    #[test]
    fn only_the_public_host_is_meshport_and_loopback_only_on_loopback() {
        let public = SecurityPolicy::new("https://meshport.example.com/", None);
        for ok in ["meshport.example.com", "MESHPORT.example.com:443"] {
            assert!(public.accepts_host(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "meshport.example.com:8443",
            "127.0.0.1:3000",
            "localhost",
            "meshport.example.com.evil.example",
        ] {
            assert!(!public.accepts_host(refused), "{refused}");
        }
        let laptop = SecurityPolicy::new("http://127.0.0.1:3000", None);
        for ok in ["127.0.0.1:3000", "localhost:3000", "[::1]:3000", "127.0.0.1:41234"] {
            assert!(laptop.accepts_host(ok), "{ok}");
        }
        for refused in ["rebind.evil.example:3000", "evil.example", "10.0.0.1:3000"] {
            assert!(!laptop.accepts_host(refused), "{refused}");
        }
        let unset = SecurityPolicy::new("http://0.0.0.0:3000", None);
        assert!(unset.accepts_host("localhost:8080"), "a port-forward");
        assert!(!unset.accepts_host("rebind.evil.example:3000"));
    }
}
