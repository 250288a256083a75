//! Signing in and out: the sign-in page (the identity provider, and the demo identities of
//! `meshport dev`), the account menu in the header, and the banner that marks demo mode.
//! Sign-in and sign-out are plain links and forms to the server's `/auth/*` routes, so they
//! work before the WASM loads.

use leptos::prelude::*;

use crate::access::{Principal, Role};
use crate::account::{AvailableSignIns, sign_in_options, whoami};
use crate::notifications::decision_queue_count;

/// The sign-in page.
#[component]
pub fn SignInPage() -> impl IntoView {
    let options = Resource::new(|| (), |()| sign_in_options());
    view! {
        <h1 class="text-2xl font-semibold">"Sign in"</h1>
        <Suspense fallback=|| view! { <p class="mt-4 text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let options = options.await.unwrap_or_default();
                view! { <SignInChoices options /> }
            })}
        </Suspense>
    }
}

#[component]
fn SignInChoices(options: AvailableSignIns) -> impl IntoView {
    let none = !options.oidc && !options.demo;
    view! {
        <div class="mt-6 space-y-6">
            <Show when=move || options.oidc>
                <a
                    id="sign-in-oidc"
                    href="/auth/login"
                    rel="external"
                    class="inline-block rounded bg-indigo-700 px-4 py-2 font-medium text-white hover:bg-indigo-800 focus:outline-none focus:ring-2 focus:ring-indigo-500"
                >
                    "Sign in with your company account"
                </a>
            </Show>
            <Show when=move || options.demo>
                <section aria-labelledby="demo-heading" class="rounded border border-amber-300 bg-amber-50 p-4">
                    <h2 id="demo-heading" class="font-semibold">"Demo identities"</h2>
                    <p class="mt-1 text-sm">
                        "Only in " <code>"meshport dev"</code>
                        " on this machine. Each is a separate person, so one can submit and another approve."
                    </p>
                    <div class="mt-3 flex flex-wrap gap-2">
                        {Role::ALL
                            .into_iter()
                            .map(|role| {
                                view! {
                                    <form method="post" action="/auth/demo">
                                        <input type="hidden" name="role" value=role.as_str() />
                                        <button
                                            type="submit"
                                            data-demo-role=role.as_str()
                                            class="rounded border border-slate-300 bg-white px-3 py-1.5 text-sm hover:bg-slate-100 focus:outline-none focus:ring-2 focus:ring-indigo-500"
                                        >
                                            {format!("Sign in as {}", role.label().to_lowercase())}
                                        </button>
                                    </form>
                                }
                            })
                            .collect_view()}
                    </div>
                </section>
            </Show>
            <Show when=move || none>
                <p role="alert">
                    "Sign-in is not configured: set " <code>"identity.issuer_url"</code>
                    " and the client credentials."
                </p>
            </Show>
        </div>
    }
}

/// Where a page served from a cache leaves the account corner for each response to fill
/// (`/status`, see [`account_menu_html`]): with [`AccountMenuSlot`] in context,
/// [`AccountMenu`] renders exactly this.
pub const ACCOUNT_MENU_SLOT: &str = "<meshport-account-menu></meshport-account-menu>";

/// In context while the server renders a page to cache: the account corner becomes
/// [`ACCOUNT_MENU_SLOT`].
#[derive(Clone, Copy, Debug)]
pub struct AccountMenuSlot;

/// The header's account corner: who is signed in, with their roles and a sign-out button, or a
/// sign-in link.
#[component]
pub fn AccountMenu() -> impl IntoView {
    if use_context::<AccountMenuSlot>().is_some() {
        return view! { <meshport-account-menu></meshport-account-menu> }.into_any();
    }
    let me = Resource::new(|| (), |()| whoami());
    // A resource, so the browser hydrates with the server's answer: a server function called
    // inside the suspense would run again in the browser while hydrating, and the admins'
    // pages then never hydrated. It answers `None` to those who do not decide.
    let waiting = Resource::new(|| (), |()| decision_queue_count());
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match me.await.ok().flatten() {
                    Some(principal) => {
                        let waiting = waiting.await.ok().flatten();
                        view! { <SignedIn principal waiting /> }.into_any()
                    }
                    None => {
                        view! {
                            <a id="sign-in" href="/signin" class="text-sm font-medium text-indigo-700 underline">
                                "Sign in"
                            </a>
                        }
                            .into_any()
                    }
                }
            })}
        </Transition>
    }
    .into_any()
}

/// The account corner of `principal` as HTML, for a page served from a cache.
pub fn account_menu_html(principal: Principal, waiting: Option<u64>) -> String {
    Owner::new().with(|| view! { <SignedIn principal waiting /> }.to_html())
}

/// Who is signed in, their roles, the decision count (`waiting`, for those who decide), and
/// the account links.
#[component]
fn SignedIn(principal: Principal, waiting: Option<u64>) -> impl IntoView {
    let admin = principal.has(Role::PlatformAdmin);
    let roles = principal.roles.iter().map(|role| role.label()).collect::<Vec<_>>().join(", ");
    view! {
        <div class="flex items-center gap-3 text-sm">
            <span id="signed-in-as">
                <span class="font-medium">{principal.name}</span>
                <span class="text-slate-500">" · " <span id="signed-in-roles">{roles}</span></span>
            </span>
            {waiting.map(|n| view! {
                <a id="decision-queue" href="/requests" class="text-indigo-700 hover:underline" title="Change sets waiting for a decision">
                    "Decisions "
                    <span id="decision-queue-count" class="rounded-full bg-indigo-600 px-1.5 text-xs font-semibold text-white">{n}</span>
                </a>
            })}
            <a id="account" href="/account" class="text-indigo-700 hover:underline">"Account"</a>
            {admin.then(|| view! {
                <a id="admin-users" href="/admin/users" class="text-indigo-700 hover:underline">"Users"</a>
            })}
            <form method="post" action="/auth/logout">
                <button
                    type="submit"
                    id="sign-out"
                    class="rounded border border-slate-300 px-2 py-1 hover:bg-slate-100 focus:outline-none focus:ring-2 focus:ring-indigo-500"
                >
                    "Sign out"
                </button>
            </form>
        </div>
    }
}

/// A banner on every page while demo sign-ins are on.
#[component]
pub fn DemoBanner() -> impl IntoView {
    let options = Resource::new(|| (), |()| sign_in_options());
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                options
                    .await
                    .is_ok_and(|o| o.demo)
                    .then(|| {
                        view! {
                            <div id="demo-banner" role="status" class="bg-amber-200 px-4 py-1 text-center text-sm text-amber-950">
                                "Demo mode: anyone on this machine can sign in with any role. Not for real work."
                            </div>
                        }
                    })
            })}
        </Transition>
    }
}
