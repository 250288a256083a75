//! The pages of the portal, one module each.

mod account;
mod audit;
mod fleet;
mod home;
mod onboard;
mod requests;
mod services;
mod signin;
mod status;
mod users;

pub use account::AccountPage;
pub use audit::AuditPage;
pub use fleet::FleetPage;
pub use home::HomePage;
pub use onboard::{LiveService, OnboardPage, PostedForm, ServiceForm};
pub use requests::{RequestPage, RequestsPage};
pub use services::{ChangePage, ServicePage, ServicesPage};
pub use signin::{
    ACCOUNT_MENU_SLOT, AccountMenu, AccountMenuSlot, DemoBanner, SignInPage, account_menu_html,
};
pub use status::{ServiceStatusPage, StatusPage, render_overview};
pub use users::{UserPage, UsersPage};

use leptos::prelude::*;

/// Whether the page at `path` holds an island, so it needs the island script and the WASM:
/// the start page (the steps toggle), the service form (`/onboard` and a live service's
/// change form) and a request's page (it follows provisioning while that runs). Every other
/// page is plain server-rendered HTML and loads no script.
pub fn has_islands(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        [""] | ["onboard"] | ["requests", _] | ["services", _, _, "change"]
    )
}

/// Shown for any path no route matches.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <h1 class="text-2xl font-semibold">"Page not found"</h1>
        <p class="mt-2">
            <a class="text-indigo-700 underline" href="/">
                "Back to the start page"
            </a>
        </p>
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The links under a paged list: back to its first page (when not on it) and to the next
/// page (when there is one), at the page's own `path`.
#[component]
fn PageLinks(path: &'static str, first: bool, next: Option<String>) -> impl IntoView {
    view! {
        <nav aria-label="Pages" class="mt-4 flex gap-4 text-sm">
            {(!first).then(|| view! { <a id="first-page" class="text-indigo-700 underline" href=path>"First page"</a> })}
            {next.map(|cursor| view! {
                <a id="next-page" rel="next" class="text-indigo-700 underline" href=format!("{path}?after={}", encode(&cursor))>"Next page"</a>
            })}
        </nav>
    }
}

#[cfg(test)]
mod tests {
    use super::has_islands;

    #[test]
    fn only_the_interactive_pages_load_the_wasm() {
        for path in ["/", "/onboard", "/requests/0c1e", "/services/prod-app/cart/change"] {
            assert!(has_islands(path), "{path}");
        }
        for path in [
            "/status",
            "/requests",
            "/services",
            "/services/prod-app/cart",
            "/audit",
            "/account",
            "/admin/users",
            "/signin",
            "/status/prod-app/cart",
        ] {
            assert!(!has_islands(path), "{path}");
        }
    }
}
