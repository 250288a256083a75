//! `GET /status` from a cache: the app renders the board's page once per status report, with a
//! slot where the caller's account corner goes ([`app::pages::ACCOUNT_MENU_SLOT`]), and each
//! response fills the slot with its caller's ([`app::pages::account_menu_html`]). A view of
//! the page then costs the caller's resolution (remembered) and, for those who decide, the
//! decision count; not a render of the app. Everyone signed in sees the same board, so the
//! page is the same for every caller but for that corner. Anonymous callers, and a page that
//! cannot be shared (the app answered with an error, or put a nonce in it), get the app's own
//! rendering.

use std::sync::{Arc, RwLock};

use app::access::Principal;
use app::notifications::ssr::decisions_waiting;
use app::pages::{ACCOUNT_MENU_SLOT, AccountMenuSlot, account_menu_html};
use app::status_report::StatusReport;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{Html, IntoResponse, Response};
use leptos::prelude::provide_context;

use super::AppState;

/// The page's path.
pub const PATH: &str = "/status";

/// The page of the last report, split around the account corner's slot.
#[derive(Default)]
pub struct Cache(RwLock<Option<(Arc<StatusReport>, Arc<Page>)>>);

/// A rendered page without its account corner.
pub struct Page {
    before: String,
    after: String,
}

impl Page {
    /// Splits the app's HTML at the slot, if it holds exactly one and nothing per response
    /// (a script nonce must never be served twice). Leptos appends its hydration data after
    /// `</html>` as scripts with the response's nonce: the page has no island and loads no
    /// script, so nothing would read them, and they are left out.
    fn split(html: &str) -> Option<Self> {
        const END: &str = "</html>";
        let html = &html[..html.find(END)? + END.len()];
        let (before, after) = html.split_once(ACCOUNT_MENU_SLOT)?;
        if after.contains(ACCOUNT_MENU_SLOT) || html.contains("nonce=") {
            return None;
        }
        Some(Self { before: before.to_owned(), after: after.to_owned() })
    }

    fn with_menu(&self, menu: &str) -> String {
        [self.before.as_str(), menu, self.after.as_str()].concat()
    }
}

impl Cache {
    /// The page rendered from `report`, if it is cached.
    fn get(&self, report: &Arc<StatusReport>) -> Option<Arc<Page>> {
        let cached = self.0.read().unwrap_or_else(|e| e.into_inner());
        cached.as_ref().filter(|(of, _)| Arc::ptr_eq(of, report)).map(|(_, page)| page.clone())
    }

    fn put(&self, report: Arc<StatusReport>, page: Arc<Page>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some((report, page));
    }
}

/// `GET /status`.
pub async fn get(State(state): State<AppState>, request: Request) -> Response {
    let Some(principal) = request.extensions().get::<Principal>().cloned() else {
        return render(&state, request, false).await;
    };
    // A GET has no body: the request can be rendered twice, with the slot and without.
    let (parts, _) = request.into_parts();
    let request = || Request::from_parts(parts.clone(), Body::empty());
    // Taken before rendering: a report published meanwhile is newer than the key, so the next
    // view renders again rather than keep an older page.
    let report = state.status.report();
    let page = match state.status_page.get(&report) {
        Some(page) => page,
        None => match render_page(&state, request()).await {
            Some(page) => {
                state.status_page.put(report, page.clone());
                page
            }
            None => return render(&state, request(), false).await,
        },
    };
    let service = state.notification_settings.as_ref();
    let waiting = decisions_waiting(service, &principal).await.unwrap_or_else(|error| {
        tracing::warn!(%error, "status page: cannot count the decisions waiting");
        None
    });
    Html(page.with_menu(&account_menu_html(principal, waiting))).into_response()
}

/// The app's page with the slot, if it can be shared.
async fn render_page(state: &AppState, request: Request) -> Option<Arc<Page>> {
    let (parts, body) = render(state, request, true).await.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.ok()?;
    let page = Page::split(std::str::from_utf8(&bytes).ok()?)?;
    parts.status.is_success().then(|| Arc::new(page))
}

/// The app's rendering of the request's page; with `slot`, the account corner is left as
/// [`ACCOUNT_MENU_SLOT`].
async fn render(state: &AppState, request: Request, slot: bool) -> Response {
    let (context, options) = (state.clone(), state.leptos_options.clone());
    let handler = leptos_axum::render_app_async_with_context(
        move || {
            provide_context(leptos_router::Method::Get);
            context.provide_context();
            if slot {
                provide_context(AccountMenuSlot);
            }
        },
        move || app::shell(options.clone()),
    );
    handler(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_shared_only_with_one_slot_and_nothing_per_response() {
        let page = format!("<html><nav>{ACCOUNT_MENU_SLOT}</nav><main>board</main></html>");
        let trailing = format!("{page}<script nonce=\"abc\">__RESOLVED_RESOURCES=[];</script>");
        let split = Page::split(&trailing).expect("one slot, data after </html> left out");
        assert_eq!(
            split.with_menu("<b>Dana</b>"),
            "<html><nav><b>Dana</b></nav><main>board</main></html>"
        );

        let nonce = format!("<html><script nonce=\"abc\"></script>{ACCOUNT_MENU_SLOT}</html>");
        let two = format!("<html>{ACCOUNT_MENU_SLOT}{ACCOUNT_MENU_SLOT}</html>");
        for refused in [nonce.as_str(), two.as_str(), "<html>no slot</html>", ACCOUNT_MENU_SLOT] {
            assert!(Page::split(refused).is_none(), "{refused}");
        }
    }
}
