//! The platform admins' pages about people: `/admin/users` lists everyone, `/admin/users/:id`
//! shows one person's sessions and tokens with the forms that revoke them or disable the
//! person. Plain form posts, so they work without JavaScript; the server checks the role.

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::users::{ActOnUser, UserDetail, get_user, list_users};

const BUTTON: &str = "rounded border border-slate-300 px-2 py-0.5 text-sm hover:bg-slate-100";

/// Everyone who signed in.
#[component]
pub fn UsersPage() -> impl IntoView {
    let users = Resource::new(|| (), |()| list_users());
    view! {
        <h1 class="text-2xl font-semibold">"Users"</h1>
        <Suspense fallback=|| view! { <p class="mt-4 text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match users.await {
                    Err(error) => view! { <p role="alert" class="mt-4 text-red-700">{error.to_string()}</p> }.into_any(),
                    Ok(users) => view! {
                        <table id="users" class="mt-4 w-full text-left text-sm">
                            <thead><tr>
                                <th>"Person"</th><th>"Roles"</th><th>"Teams"</th>
                                <th>"Sessions"</th><th>"Tokens"</th><th>"State"</th>
                            </tr></thead>
                            <tbody>
                                {users.into_iter().map(|user| {
                                    let label = if user.email.is_empty() { user.subject.clone() } else { user.email.clone() };
                                    view! {
                                        <tr data-user=user.id.clone()>
                                            <td><a class="text-indigo-700 underline" href=format!("/admin/users/{}", user.id)>{user.name}</a>
                                                <span class="text-slate-500">" · " {label}</span></td>
                                            <td>{user.roles.join(", ")}</td>
                                            <td>{user.teams.join(", ")}</td>
                                            <td>{user.live_sessions}</td>
                                            <td>{user.live_tokens}</td>
                                            <td>{user.disabled.map_or_else(|| "active".to_owned(), |why| format!("disabled: {why}"))}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// One person: their sessions and tokens, and what an admin can do about them.
#[component]
pub fn UserPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let act = ServerAction::<ActOnUser>::new();
    let detail = Resource::new(move || (id(), act.version().get()), |(id, _)| get_user(id));
    let error = move || act.value().get().and_then(Result::err).map(|e| e.to_string());
    view! {
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Err(error) => view! { <p role="alert" class="text-red-700">{error.to_string()}</p> }.into_any(),
                    Ok(detail) => view! { <Person detail act /> }.into_any(),
                }
            })}
        </Transition>
        <p role="alert" id="action-error" class="mt-2 text-sm text-red-700">{error}</p>
    }
}

#[component]
fn Person(detail: UserDetail, act: ServerAction<ActOnUser>) -> impl IntoView {
    let user = detail.user;
    let id = user.id.clone();
    // One small form per button: an id, the action and what it acts on.
    let button =
        move |action: &'static str, target: String, label: &'static str, dom_id: String| {
            let id = id.clone();
            view! {
                <ActionForm action=act>
                    <input type="hidden" name="id" value=id />
                    <input type="hidden" name="action" value=action />
                    <input type="hidden" name="target" value=target />
                    <button type="submit" id=dom_id class=BUTTON>{label}</button>
                </ActionForm>
            }
        };
    let label = if user.email.is_empty() { user.subject.clone() } else { user.email.clone() };
    view! {
        <h1 class="text-2xl font-semibold">{user.name.clone()}</h1>
        <p class="mt-1 text-sm text-slate-600">
            {label} " · roles " <span id="user-roles">{user.roles.join(", ")}</span>
            " · teams " {user.teams.join(", ")}
            " · confirmed by the identity provider " {user.validated_at.clone().unwrap_or_else(|| "never".into())}
        </p>
        <p id="user-state" class="mt-1 text-sm">
            {user.disabled.clone().map_or_else(|| "Active".to_owned(), |why| format!("Disabled: {why}"))}
        </p>
        <section aria-labelledby="sessions" class="mt-6">
            <h2 id="sessions" class="font-medium">"Sessions"</h2>
            <ul class="mt-2 space-y-1 text-sm">
                {detail.sessions.into_iter().map(|session| {
                    let revoke = (!session.ended).then(|| button("revoke_session", session.id.clone(), "End", format!("end-session-{}", session.id)));
                    view! {
                        <li class="flex items-center gap-2" data-session=session.id.clone() data-ended=session.ended.to_string()>
                            {format!("{} · signed in {} · until {}{}", session.method, session.signed_in_at, session.expires_at, if session.ended { " · ended" } else { "" })}
                            {revoke}
                        </li>
                    }
                }).collect_view()}
            </ul>
        </section>
        <section aria-labelledby="tokens" class="mt-6">
            <h2 id="tokens" class="font-medium">"API tokens"</h2>
            <ul class="mt-2 space-y-1 text-sm">
                {detail.tokens.into_iter().map(|token| {
                    let roles = token.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ");
                    let revoke = (!token.revoked).then(|| button("revoke_token", token.id.clone(), "Revoke", format!("revoke-token-{}", token.id)));
                    view! {
                        <li class="flex items-center gap-2" data-token=token.id.clone() data-revoked=token.revoked.to_string()>
                            {format!("{} ({roles}) · until {}{}", token.name, token.expires_at, if token.revoked { " · revoked" } else { "" })}
                            {revoke}
                        </li>
                    }
                }).collect_view()}
            </ul>
        </section>
        <section aria-labelledby="disable" class="mt-6 rounded-lg border border-slate-200 bg-white p-4">
            {if user.disabled.is_some() {
                view! {
                    <h2 id="disable" class="font-medium">"Enable"</h2>
                    <div class="mt-2">{button("enable", String::new(), "Enable this user", "enable-user".into())}</div>
                }.into_any()
            } else {
                let id = user.id.clone();
                view! {
                    <h2 id="disable" class="font-medium">"Disable"</h2>
                    <p class="text-sm text-slate-600">"Ends every session and token at once; sign-in is refused until enabled."</p>
                    <ActionForm action=act attr:class="mt-2 space-y-2">
                        <input type="hidden" name="id" value=id />
                        <input type="hidden" name="action" value="disable" />
                        <label class="block text-sm" for="disable-reason">"Reason (required)"</label>
                        <input id="disable-reason" name="reason" class="w-full rounded border border-slate-300 px-2 py-1" />
                        <button type="submit" id="disable-user" class="rounded bg-red-600 px-3 py-1 text-white hover:bg-red-700">"Disable"</button>
                    </ActionForm>
                }.into_any()
            }}
        </section>
    }
}
