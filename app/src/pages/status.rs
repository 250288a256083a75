//! `/status`: the platform overview (counts by state, what needs attention, soonest expiries,
//! the 90-day timeline) and `/status/:namespace/:service`: one service's items.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::rotation::RotationState;
use crate::status_report::{
    SourceHealth, StatusItem, get_service_status, get_status_overview, utc,
};

/// The platform overview.
#[component]
pub fn StatusPage() -> impl IntoView {
    let overview = Resource::new(|| (), |()| get_status_overview());
    view! {
        <h1 class="text-2xl font-semibold">"Certificates and rotation"</h1>
        <Suspense fallback=|| view! { <p class="mt-4 text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match overview.await {
                    Err(error) => view! { <p role="alert" class="mt-4 text-red-700">{error.to_string()}</p> }.into_any(),
                    Ok(overview) => view! {
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
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// One service's certificates and secrets.
#[component]
pub fn ServiceStatusPage() -> impl IntoView {
    let params = use_params_map();
    let status = Resource::new(
        move || {
            let p = params.read();
            (p.get("namespace").unwrap_or_default(), p.get("service").unwrap_or_default())
        },
        |(namespace, service)| get_service_status(namespace, service),
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
