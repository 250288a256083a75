//! `/status`: the platform overview (counts by state, what needs attention, soonest expiries,
//! the 90-day timeline) and `/status/:namespace/:service`: one service's items.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use leptos::form::ActionForm;

use crate::rotation::RotationState;
use crate::secret_rotation::{PodsVersion, RotateSecret, ServiceSecrets, get_service_secrets};
use crate::status_report::{
    SourceHealth, StatusItem, StatusOverview, get_service_status, status_overview_html, utc,
};

/// The platform overview: the board's cached rendering ([`render_overview`]), so a page view
/// costs the caller's menu and the page around it, not the overview.
#[component]
pub fn StatusPage() -> impl IntoView {
    view! {
        <h1 class="text-2xl font-semibold">"Certificates and rotation"</h1>
        <Suspense fallback=|| view! { <p class="mt-4 text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match status_overview_html().await {
                    Err(error) => view! { <p role="alert" class="mt-4 text-red-700">{error.to_string()}</p> }.into_any(),
                    Ok(html) => view! { <div id="status-overview" inner_html=html></div> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The overview's HTML, rendered on the server once per status report.
pub fn render_overview(overview: StatusOverview) -> String {
    view! {
        <Sources sources=overview.sources generated_at=overview.generated_at />
        <ul id="status-counts" class="mt-4 flex flex-wrap gap-3">
            {overview.counts.into_iter().map(|(state, count)| view! {
                <li data-state=state.as_str() class=format!("rounded px-3 py-2 text-sm {}", colour(state))>
                    <span class="block text-2xl font-semibold">{count}</span>
                    {state.label()}
                </li>
            }).collect_view()}
        </ul>
        <Timeline svg=overview.timeline_svg />
        <h2 class="mt-6 text-lg font-medium">"Needs attention"</h2>
        <ItemTable id="status-attention" items=overview.attention empty="Everything is OK." />
        <h2 class="mt-6 text-lg font-medium">"Soonest renewals and expiries"</h2>
        <ItemTable id="status-soonest" items=overview.soonest empty="Nothing expires." />
    }
    .to_html()
}

/// One service's certificates and secrets.
#[component]
pub fn ServiceStatusPage() -> impl IntoView {
    let params = use_params_map();
    let key = move || {
        let p = params.read();
        (p.get("namespace").unwrap_or_default(), p.get("service").unwrap_or_default())
    };
    let status = Resource::new(key, |(namespace, service)| get_service_status(namespace, service));
    let rotate = ServerAction::<RotateSecret>::new();
    let secrets = Resource::new(
        move || (key(), rotate.version().get()),
        |((namespace, service), _)| get_service_secrets(namespace, service),
    );
    view! {
        <Suspense fallback=|| view! { <p class="text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match status.await {
                    Err(error) => view! { <p role="alert" class="text-red-700">{error.to_string()}</p> }.into_any(),
                    Ok(status) => view! {
                        <h1 class="text-2xl font-semibold">{format!("{}: certificates and secrets", status.service)}</h1>
                        <p class="mt-1 text-sm"><a class="text-indigo-700 underline" href="/status">"Platform overview"</a></p>
                        <Sources sources=status.sources generated_at=status.generated_at />
                        <Timeline svg=status.timeline_svg />
                        <ItemTable id="service-items" items=status.items empty="No certificate or secret of this service is known." />
                    }.into_any(),
                }
            })}
        </Suspense>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                // A service that is not live yet has no secrets to act on: nothing to show.
                secrets.await.ok().map(|secrets| view! { <Secrets secrets rotate /> })
            })}
        </Suspense>
    }
}

/// The service's secrets: versions, ages, next rotations, delivery, and "rotate now".
#[component]
fn Secrets(secrets: ServiceSecrets, rotate: ServerAction<RotateSecret>) -> impl IntoView {
    let (namespace, service) = secrets
        .service
        .split_once('/')
        .map(|(n, s)| (n.to_owned(), s.to_owned()))
        .unwrap_or_default();
    let result = move || {
        match rotate.value().get() {
        Some(Ok(done)) => Some(view! {
            <p id="rotate-result" role="status" class="mt-2 rounded bg-emerald-50 px-2 py-1 text-sm text-emerald-900">
                {format!("{} is now at version {}. {}", done.secret, done.version, done.delivery)}
            </p>
        }.into_any()),
        Some(Err(error)) => Some(view! {
            <p id="rotate-error" role="alert" class="mt-2 rounded bg-red-50 px-2 py-1 text-sm text-red-900">{error.to_string()}</p>
        }.into_any()),
        None => None,
    }
    };
    let may_rotate = secrets.may_rotate;
    view! {
        <section aria-labelledby="secrets-heading" class="mt-6">
            <h2 id="secrets-heading" class="text-lg font-medium">"Secrets and rotation"</h2>
            <p id="rotation-plan" class="mt-1 text-sm text-slate-600" data-policy=secrets.policy.as_str() data-delivery=secrets.delivery.as_str()>
                {format!("Rotation every {} days, {}; delivery: {}.", secrets.rotation_days, secrets.policy.as_str(), secrets.delivery.as_str())}
                {secrets.reload_command.clone().map(|c| view! { " Reload command: " <code>{c}</code> })}
            </p>
            {secrets.rollout.clone().map(|r| view! {
                <p id="rollout" data-state=r.state.clone() class="mt-1 text-sm text-slate-600">
                    {format!("Restart rollout {} ({} rotation(s)); opens at {} UTC at the earliest. ", r.state, r.rotations, utc(r.not_before))}
                    {r.pull_request_url.map(|url| view! { <a class="text-indigo-700 underline" href=url.clone()>"Its pull request"</a> })}
                    {r.error.map(|e| format!(" Last problem: {e}"))}
                </p>
            })}
            {secrets.certificate.clone().map(|c| view! {
                <p id="certificate-plan" class="mt-1 text-sm text-slate-600">
                    {format!("Vault PKI certificate: {} hours. {}", c.ttl_hours, c.renewal)}
                    {c.warning.map(|w| view! { <span role="alert" class="ml-1 text-orange-800">{w}</span> })}
                </p>
            })}
            {result}
            {if secrets.secrets.is_empty() {
                view! { <p id="service-secrets" class="mt-2 text-slate-600">"This service has no secrets."</p> }.into_any()
            } else {
                view! {
                    <table id="service-secrets" class="mt-2 w-full text-left text-sm">
                        <thead><tr class="border-b border-slate-200">
                            <th scope="col" class="py-1">"Secret"</th>
                            <th scope="col">"Version"</th>
                            <th scope="col">"Age"</th>
                            <th scope="col">"Due (UTC)"</th>
                            <th scope="col">"Next scheduled rotation"</th>
                            <th scope="col">"Running pods"</th>
                            <th scope="col">"Rotate"</th>
                        </tr></thead>
                        <tbody>
                            {secrets.secrets.into_iter().map(|secret| {
                                let state = secret.judgement.state;
                                let pods = match &secret.pods {
                                    PodsVersion::Current => "have this version".to_owned(),
                                    PodsVersion::Behind(v) => format!("still run version {v}"),
                                    PodsVersion::Unknown(why) => format!("unknown: {why}"),
                                };
                                let rotatable = may_rotate && secret.source != "existing";
                                let provided = secret.source == "provided";
                                let name = secret.name.clone();
                                let (namespace, service, field) = (namespace.clone(), service.clone(), name.clone());
                                view! {
                                    <tr class="border-b border-slate-100 align-top" data-secret=name.clone() data-state=state.as_str()>
                                        <td class="py-1">
                                            <span class="font-mono">{name.clone()}</span>
                                            <span class="ml-1 text-xs text-slate-500">{secret.source.clone()}</span>
                                            <br /><span class=format!("rounded px-2 py-0.5 text-xs font-medium {}", colour(state))>{state.label()}</span>
                                        </td>
                                        <td id=format!("secret-version-{name}") data-version=secret.version.to_string()>{secret.version}</td>
                                        <td>{secret.age_days.map(|d| format!("{d} days")).unwrap_or_else(|| "–".into())}</td>
                                        <td>{secret.due_at.map(utc).unwrap_or_else(|| "–".into())}</td>
                                        <td>{secret.next_rotation.map(utc).unwrap_or_else(|| "manual".into())}</td>
                                        <td>{pods}</td>
                                        <td>{rotatable.then(move || { let name = field; view! {
                                            <ActionForm action=rotate attr:class="flex flex-col gap-1">
                                                <input type="hidden" name="namespace" value=namespace.clone() />
                                                <input type="hidden" name="service" value=service.clone() />
                                                <input type="hidden" name="secret" value=name.clone() />
                                                <input name="reason" id=format!("rotate-reason-{name}") required aria-label=format!("Why {name} is rotated") placeholder="reason" class="rounded border border-slate-300 px-2 py-1" />
                                                {provided.then(|| view! {
                                                    <input type="password" name="value" id=format!("rotate-value-{name}") required autocomplete="new-password" aria-label=format!("New value of {name}") placeholder="new value" class="rounded border border-slate-300 px-2 py-1" />
                                                })}
                                                <button type="submit" id=format!("rotate-{name}") class="rounded bg-indigo-600 px-2 py-1 text-white hover:bg-indigo-700">"Rotate now"</button>
                                            </ActionForm>
                                        }})}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

/// Which sources were read when, and which are unreachable.
#[component]
fn Sources(sources: Vec<SourceHealth>, generated_at: i64) -> impl IntoView {
    view! {
        <p class="mt-1 text-sm text-slate-600">
            {if generated_at > 0 { format!("As of {} UTC.", utc(generated_at)) } else { "Not read yet.".to_owned() }}
        </p>
        <ul id="status-sources" class="mt-2 space-y-1 text-sm">
            {sources.into_iter().map(|source| {
                let shown = source.last_success.map_or_else(
                    || "nothing read yet".to_owned(),
                    |t| format!("showing what was read at {} UTC", utc(t)),
                );
                let retry = source.retry_at.map(|t| format!("; next attempt {} UTC", utc(t))).unwrap_or_default();
                match source.error {
                    None => view! {
                        <li data-source=source.name.clone() data-reachable="true" class="text-slate-600">
                            {format!("{}: reachable", source.name)}
                        </li>
                    }.into_any(),
                    Some(error) => view! {
                        <li role="alert" data-source=source.name.clone() data-reachable="false" class="rounded bg-red-50 px-2 py-1 text-red-900">
                            {format!("{} unreachable: {error} ({shown}{retry})", source.name)}
                        </li>
                    }.into_any(),
                }
            }).collect_view()}
        </ul>
    }
}

/// The server-rendered SVG timeline. The server escapes every name in it.
#[component]
fn Timeline(svg: String) -> impl IntoView {
    view! {
        <figure id="status-timeline" class="mt-6 overflow-x-auto rounded-lg border border-slate-200 bg-white p-2">
            <div inner_html=svg></div>
            <figcaption class="px-2 text-xs text-slate-500">"Renewals and expiries in the next 90 days, by state."</figcaption>
        </figure>
    }
}

#[component]
fn ItemTable(id: &'static str, items: Vec<StatusItem>, empty: &'static str) -> impl IntoView {
    if items.is_empty() {
        return view! { <p id=id class="mt-2 text-slate-600">{empty}</p> }.into_any();
    }
    view! {
        <table id=id class="mt-2 w-full text-left text-sm">
            <thead><tr class="border-b border-slate-200">
                <th scope="col" class="py-1">"State"</th>
                <th scope="col">"What"</th>
                <th scope="col">"Where"</th>
                <th scope="col">"Renews / due (UTC)"</th>
                <th scope="col">"Expires (UTC)"</th>
                <th scope="col">"Why"</th>
            </tr></thead>
            <tbody>
                {items.into_iter().map(|item| {
                    let state = item.judgement.state;
                    let service = item.service.clone().map(|s| view! {
                        <a class="text-indigo-700 underline" href=format!("/status/{s}")>{s.clone()}</a>
                    });
                    let (renews, expires) = match item.kind {
                        // A secret's date is when its rotation is due, not an expiry.
                        crate::status_report::ItemKind::Secret => (item.expires_at, None),
                        _ => (item.renews_at, item.expires_at),
                    };
                    view! {
                        <tr class="border-b border-slate-100 align-top" data-key=item.key() data-state=state.as_str()>
                            <td class="py-1"><span class=format!("rounded px-2 py-0.5 text-xs font-medium {}", colour(state))>{state.label()}</span></td>
                            <td>{item.kind.label()} <br /> <span class="font-mono text-xs">{item.name.clone()}</span></td>
                            <td>{format!("{} · {}", item.source, item.namespace)} <br /> {service}</td>
                            <td>{renews.map(utc).unwrap_or_else(|| "–".into())}</td>
                            <td>{expires.map(utc).unwrap_or_else(|| "–".into())}</td>
                            <td>{item.judgement.reason.clone()}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// The colours of a state, shared by the badges and the counts.
fn colour(state: RotationState) -> &'static str {
    match state {
        RotationState::Ok => "bg-emerald-100 text-emerald-900",
        RotationState::DueSoon => "bg-amber-100 text-amber-900",
        RotationState::Overdue => "bg-orange-100 text-orange-900",
        RotationState::Failing => "bg-red-100 text-red-900",
        RotationState::Expired => "bg-red-200 text-red-950",
    }
}
