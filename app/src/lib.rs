//! meshport's shared half: what runs both in the browser (compiled to WASM with `hydrate`) and on
//! the server (with `ssr`): the page shell and routes, pages, shared domain types and the
//! signatures of server functions. Server-only behaviour is reached through the small traits in
//! each module's `ssr` submodule, which the `server` crate implements and provides as context.

pub mod access;
pub mod account;
pub mod audit;
pub mod fleet;
pub mod notifications;
pub mod onboarding;
pub mod pages;
pub mod platform;
pub mod request_api;
pub mod rotation;
pub mod secret_rotation;
pub mod status_report;
pub mod users;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    ParamSegment, SsrMode, StaticSegment,
    components::{Route, Router, Routes},
};

/// The name cargo-leptos gives the bundle: `/pkg/meshport.js`, `.wasm` and `.css`.
pub const OUTPUT_NAME: &str = "meshport";

/// The HTML document around [`App`], rendered on the server only.
///
/// Islands mode: only the interactive parts (`#[island]` components) hydrate, and a page
/// without any loads no script and no WASM at all ([`pages::has_islands`]).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // Outside islands nothing hydrates: no hydration ids, no serialised resources.
    if let Some(context) = Owner::current_shared_context() {
        context.set_is_hydrating(false);
    }
    let scripts = pages::has_islands(&request_path())
        .then(|| view! { <HydrationScripts options=options.clone() islands=true /> });
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <AutoReload options=options.clone() />
                {scripts}
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <MetaTags />
            </head>
            <body class="min-h-screen bg-slate-50 text-slate-900 antialiased">
                <App />
            </body>
        </html>
    }
}

/// The application: routes and the layout shared by every page.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href=format!("/pkg/{OUTPUT_NAME}.css") />
        <Title text="meshport" />
        <Router>
            <pages::DemoBanner />
            <header class="border-b border-slate-200 bg-white">
                <nav
                    class="mx-auto flex max-w-5xl items-center justify-between px-4 py-3"
                    aria-label="Main"
                >
                    <a href="/" class="text-lg font-semibold tracking-tight text-indigo-700">
                        "meshport"
                    </a>
                    <span class="hidden text-sm text-slate-500 sm:inline">
                        "Self-service onboarding to the mesh"
                    </span>
                    <span class="flex gap-4 text-sm">
                        <a href="/onboard" class="text-indigo-700 hover:underline">"Onboard"</a>
                        <a href="/requests" class="text-indigo-700 hover:underline">"Requests"</a>
                        <a href="/services" class="text-indigo-700 hover:underline">"Services"</a>
                        <a href="/status" class="text-indigo-700 hover:underline">"Status"</a>
                        <a href="/fleet" class="text-indigo-700 hover:underline">"Fleet"</a>
                    </span>
                    <pages::AccountMenu />
                </nav>
            </header>
            <main class="mx-auto max-w-5xl px-4 py-8">
                <Routes fallback=pages::NotFound>
                    <Route path=StaticSegment("") view=pages::HomePage />
                    // Async rendering: the whole page in the first response, so these pages
                    // work without JavaScript (streamed Suspense needs a script to resolve).
                    <Route path=StaticSegment("signin") view=pages::SignInPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("audit") view=pages::AuditPage />
                    <Route path=StaticSegment("account") view=pages::AccountPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("onboard") view=pages::OnboardPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("requests") view=pages::RequestsPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("services") view=pages::ServicesPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("status") view=pages::StatusPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("fleet") view=pages::FleetPage ssr=SsrMode::Async />
                    <Route
                        path=(StaticSegment("status"), ParamSegment("namespace"), ParamSegment("service"))
                        view=pages::ServiceStatusPage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=(StaticSegment("services"), ParamSegment("namespace"), ParamSegment("service"))
                        view=pages::ServicePage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=(StaticSegment("services"), ParamSegment("namespace"), ParamSegment("service"), StaticSegment("change"))
                        view=pages::ChangePage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=(StaticSegment("admin"), StaticSegment("users"))
                        view=pages::UsersPage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=(StaticSegment("admin"), StaticSegment("users"), ParamSegment("id"))
                        view=pages::UserPage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=(StaticSegment("requests"), ParamSegment("id"))
                        view=pages::RequestPage
                        ssr=SsrMode::Async
                    />
                </Routes>
            </main>
        </Router>
    }
}

/// The path of the request being rendered (empty outside a request).
fn request_path() -> String {
    #[cfg(feature = "ssr")]
    if let Some(parts) = use_context::<http::request::Parts>() {
        return parts.uri.path().to_owned();
    }
    String::new()
}

/// The WASM entry point: the island script calls it, then hydrates each island on the page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
