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
pub use signin::{AccountMenu, DemoBanner, SignInPage};
pub use status::{ServiceStatusPage, StatusPage};
pub use users::{UserPage, UsersPage};

use leptos::prelude::*;

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
