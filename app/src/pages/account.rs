//! `/account`: the caller's notification kinds, each muted or not with one button, and for
//! platform admins the deliveries that gave up. Plain form posts, so it works without
//! JavaScript; the server checks who asks.

use leptos::form::ActionForm;
use leptos::prelude::*;

use crate::access::Role;
use crate::account::whoami;
use crate::notifications::{SetNotificationMuted, failed_notifications, notification_settings};

const BUTTON: &str = "rounded border border-slate-300 px-2 py-0.5 text-sm hover:bg-slate-100";

/// The caller's notification settings.
#[component]
pub fn AccountPage() -> impl IntoView {
    let mute = ServerAction::<SetNotificationMuted>::new();
    let settings = Resource::new(move || mute.version().get(), |_| notification_settings());
    let error = move || mute.value().get().and_then(Result::err).map(|e| e.to_string());
    view! {
        <h1 class="text-2xl font-semibold">"Your account"</h1>
        <h2 class="mt-6 text-lg font-semibold">"Notifications"</h2>
        <p class="mt-1 text-sm text-slate-600">
            "meshport e-mails you at the address your identity provider gives, with a link to the page that acts on it. Mute what you do not want; your team's chat channel still hears of it."
        </p>
        <Transition fallback=|| view! { <p class="mt-4 text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match settings.await {
                    Err(error) => view! { <p role="alert" class="mt-4 text-red-700">{error.to_string()}</p> }.into_any(),
                    Ok(settings) => view! {
                        <table id="notification-settings" class="mt-4 w-full text-left text-sm">
                            <thead><tr><th>"When"</th><th>"E-mail"</th><th></th></tr></thead>
                            <tbody>
                                {settings.into_iter().map(|setting| {
                                    let kind = setting.kind.as_str();
                                    let (state, label, next) = if setting.muted {
                                        ("muted", "Unmute", "false")
                                    } else {
                                        ("on", "Mute", "true")
                                    };
                                    view! {
                                        <tr id=format!("notify-{kind}")>
                                            <td>{setting.kind.label()}</td>
                                            <td class="notify-state">{state}</td>
                                            <td>
                                                <ActionForm action=mute>
                                                    <input type="hidden" name="kind" value=kind />
                                                    <input type="hidden" name="muted" value=next />
                                                    <button type="submit" id=format!("toggle-{kind}") class=BUTTON>{label}</button>
                                                </ActionForm>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                }
            })}
        </Transition>
        <p role="alert" id="action-error" class="mt-2 text-sm text-red-700">{error}</p>
        <FailedDeliveries />
    }
}

/// Deliveries that gave up, for platform admins; nothing for others.
#[component]
fn FailedDeliveries() -> impl IntoView {
    let failed = Resource::new(
        || (),
        |()| async move {
            let admin = whoami().await.ok().flatten().is_some_and(|p| p.has(Role::PlatformAdmin));
            if admin { failed_notifications().await.map(Some) } else { Ok(None) }
        },
    );
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match failed.await {
                    Ok(None) => ().into_any(),
                    Err(error) => view! { <p role="alert" class="mt-4 text-red-700">{error.to_string()}</p> }.into_any(),
                    Ok(Some(failed)) => view! {
                        <h2 class="mt-8 text-lg font-semibold">"Failed deliveries"</h2>
                        <p class="mt-1 text-sm text-slate-600">
                            "Notifications meshport gave up on after their retries (check the SMTP server and the webhooks in [notify])."
                        </p>
                        <table id="failed-notifications" class="mt-2 w-full text-left text-sm">
                            <thead><tr><th>"When"</th><th>"To"</th><th>"Subject"</th><th>"Attempts"</th><th>"Error"</th></tr></thead>
                            <tbody>
                                {failed.into_iter().map(|n| view! {
                                    <tr>
                                        <td>{n.updated_at}</td>
                                        <td>{format!("{} {}", n.channel, n.recipient)}</td>
                                        <td>{n.subject}</td>
                                        <td>{n.attempts}</td>
                                        <td>{n.last_error.unwrap_or_default()}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}
