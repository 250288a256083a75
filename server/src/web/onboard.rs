//! `POST /onboard` and `POST /services/{namespace}/{service}/change`: the service form as a
//! browser without JavaScript posts it (a new service, or a change of a live one). A row's "add"
//! or "remove" button brings the page back with that row added or removed; "Submit" submits
//! the request and goes to its page or, refused, brings the page back with the validator's
//! errors. Either way the page shows what was typed (never a secret value), which a redirect
//! back to the form could not carry.

use app::access::{AppError, Principal};
use app::onboarding::{FormPost, OnboardForm, RowEdit, ValidationErrors};
use app::pages::PostedForm;
use app::request_api::ssr::RequestService;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use leptos::prelude::provide_context;

use super::AppState;

/// A form is a few kilobytes; this bounds what one post makes the server buffer.
const MAX_FORM_BYTES: usize = 1024 * 1024;

/// What a post of the form submits.
enum Target {
    /// A new service's onboarding.
    Onboard,
    /// A change set of the live service `namespace/service`.
    Change { namespace: String, service: String },
}

/// Answers a post of the onboarding form.
pub async fn post_form(state: State<AppState>, request: Request) -> Response {
    answer(state, Target::Onboard, request).await
}

/// Answers a post of a live service's change form.
pub async fn post_change_form(
    state: State<AppState>,
    Path((namespace, service)): Path<(String, String)>,
    request: Request,
) -> Response {
    answer(state, Target::Change { namespace, service }, request).await
}

async fn answer(State(state): State<AppState>, target: Target, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let post = match FormPost::decode(&body) {
        Ok(post) => post,
        Err(error) => {
            return (StatusCode::BAD_REQUEST, format!("Not an onboarding form: {error}"))
                .into_response();
        }
    };
    let (status, shown) = match post.row {
        // A row button never submits, even one with a value this page did not draw.
        Some(button) => {
            let mut form = post.form;
            if let Some(edit) = RowEdit::parse(&button) {
                form.edit(edit);
            }
            let shown = PostedForm { form: form.without_secret_values(), ..PostedForm::default() };
            (StatusCode::OK, shown)
        }
        None => {
            let principal = parts.extensions.get::<Principal>().cloned();
            match submit(&state, principal, &target, &post.form).await {
                Ok(id) => return Redirect::to(&format!("/requests/{id}")).into_response(),
                Err(error) => {
                    let status = StatusCode::from_u16(error.status())
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    let (errors, problem) = match error {
                        AppError::InvalidRequest(errors) => (errors.0, None),
                        other => (Vec::new(), Some(other.to_string())),
                    };
                    let form = post.form.without_secret_values();
                    (status, PostedForm { form, errors, problem })
                }
            }
        }
    };
    let options = state.leptos_options.clone();
    let render = leptos_axum::render_app_async_with_context(
        move || {
            state.provide_context();
            provide_context(shown.clone());
        },
        move || app::shell(options.clone()),
    );
    let mut response = render(Request::from_parts(parts, Body::empty())).await;
    *response.status_mut() = status;
    response
}

/// What `submit_form` (or `submit_change`) does, for the principal the session resolved.
async fn submit(
    state: &AppState,
    principal: Option<Principal>,
    target: &Target,
    form: &OnboardForm,
) -> Result<String, AppError> {
    let principal = principal.ok_or(AppError::SignInRequired)?;
    let request = form.to_request().map_err(|errors| AppError::from(ValidationErrors(errors)))?;
    match target {
        Target::Onboard => state.requests.submit(&principal, request).await,
        Target::Change { namespace, service } => {
            state.requests.propose_change(&principal, namespace, service, request).await
        }
    }
}
