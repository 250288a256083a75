//! Browser-facing protections on every response: cross-site request forgery refused for every
//! state-changing request (server functions, forms, API), and the security headers, with a
//! Content-Security-Policy whose script nonce Leptos puts on each inline script it renders.

use std::sync::Arc;

use app::access::AppError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::Method;
use http::header::{self, HeaderValue};

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
}

impl SecurityPolicy {
    /// The policy for a public URL and identity provider issuer.
    pub fn new(public_url: &str, issuer: Option<&str>) -> Self {
        let origin_of =
            |url: &str| url::Url::parse(url).map(|u| u.origin().ascii_serialization()).ok();
        Self {
            origin: origin_of(public_url).unwrap_or_default(),
            https: public_url.starts_with("https://"),
            form_targets: issuer.and_then(origin_of).into_iter().collect(),
        }
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
}
