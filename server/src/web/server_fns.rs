//! Server functions answer with their error's own status. Leptos answers 500 for any error it
//! raises before the function runs (arguments that do not decode, for one), which tells a
//! client "the server failed" when the call was wrong: those become the error's status (400
//! for malformed or missing arguments), with the error's JSON body unchanged.

use app::access::AppError;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::StatusCode;

/// Error bodies are small; anything larger is passed on untouched.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Corrects the status of a server function's 500 whose body is an [`AppError`] of another kind.
pub async fn error_status(request: Request, next: Next) -> Response {
    let is_server_fn = request.method() == http::Method::POST
        && request.uri().path().starts_with("/api/")
        && !request.uri().path().starts_with("/api/v1/");
    let response = next.run(request).await;
    if !is_server_fn || response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BYTES).await else {
        // Too large to be an error body, or cut off: nothing sensible to send but the status.
        return Response::from_parts(parts, Body::empty());
    };
    if let Ok(error) = serde_json::from_slice::<AppError>(&bytes)
        && let Ok(status) = StatusCode::from_u16(error.status())
    {
        parts.status = status;
    }
    Response::from_parts(parts, Body::from(bytes))
}
