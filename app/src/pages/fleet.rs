//! `/fleet`: every live service's files against what meshport renders today (counts by class,
//! by namespace and by team, then each drifted service's files), upgrade progress, and for
//! platform admins the plain forms that run a pass, open an upgrade batch (with a decision per
//! hand-edited service) and approve a batch by its listed digests. Server-rendered HTML and
//! `<form method="post">` only: it works without JavaScript.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::access::Role;
use crate::account::whoami;
use crate::fleet::{ClassCounts, DriftClass, FleetView, ServiceDrift, UpgradeBatch, fleet_overview};
use crate::onboarding::RequestStatus;

const BUTTON: &str = "rounded border border-slate-300 px-3 py-1 text-sm hover:bg-slate-100 focus:outline-none focus:ring-2 focus:ring-indigo-500";

/// The fleet page.
#[component]
pub fn FleetPage() -> impl IntoView {
    let query = use_query_map();
    let done = move || query.read().get("done");
    let problem = move || query.read().get("problem");
    let fleet = Resource::new(|| (), |()| fleet_overview());
    let me = Resource::new(|| (), |()| whoami());
    view! {
        <h1 class="text-2xl font-semibold">"Fleet"</h1>
        <p class="mt-1 text-sm text-slate-600">
            "Each live service's files in the GitOps repository against what this meshport renders for its approved spec."
        </p>
        {move || done().map(|text| view! { <p id="fleet-done" role="status" class="mt-4 rounded bg-emerald-50 px-3 py-2 text-emerald-900">{text}</p> })}
        {move || problem().map(|text| view! { <p id="fleet-problem" role="alert" class="mt-4 rounded bg-red-50 px-3 py-2 text-red-900">{text}</p> })}
        <Suspense fallback=|| view! { <p class="mt-4 text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let me = me.await.ok().flatten();
                let admin = me.as_ref().is_some_and(|p| p.has(Role::PlatformAdmin));
                let my_id = me.map(|p| p.user_id).unwrap_or_default();
                match fleet.await {
                    Err(error) => view! { <p role="alert" class="mt-4 text-red-700">{error.to_string()}</p> }.into_any(),
                    Ok(view) => fleet_view(view, admin, my_id).into_any(),
                }
            })}
        </Suspense>
    }
}

fn fleet_view(view: FleetView, admin: bool, my_id: String) -> impl IntoView {
    let FleetView { report, progress, batches } = view;
    let summary = match &report {
        None => "No drift pass has run yet.".to_owned(),
        Some(report) => format!(
            "Checked {} at commit {} against meshport {}.",
            report.checked_at.get(..19).unwrap_or(&report.checked_at),
            report.base_commit.get(..12).unwrap_or(&report.base_commit),
            report.generator_version
        ),
    };
    let (totals, by_namespace, by_team, drifted) = match &report {
        Some(report) => (
            vec![ClassCounts { group: "all services".into(), ..report.totals() }],
            report.counts_by(|s| &s.namespace),
            report.counts_by(|s| &s.team),
            report.services.iter().filter(|s| s.worst() != DriftClass::Current || s.in_flight).cloned().collect(),
        ),
        None => (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
    };
    let hand_edited: Vec<ServiceDrift> = drifted.iter().filter(|s| s.has_hand_change() && !s.in_flight).cloned().collect();
    view! {
        <p id="fleet-summary" class="mt-4 text-sm">{summary}</p>
        {admin.then(|| view! {
            <form method="post" action="/fleet/check" class="mt-2">
                <button type="submit" id="fleet-check" class=BUTTON>"Check now"</button>
            </form>
        })}
        <h2 class="mt-6 font-medium">"Files by class"</h2>
        <CountsTable id="fleet-totals" label="Whole fleet" counts=totals />
        <h2 class="mt-6 font-medium">"By namespace"</h2>
        <CountsTable id="fleet-namespaces" label="Namespace" counts=by_namespace />
        <h2 class="mt-6 font-medium">"By team"</h2>
        <CountsTable id="fleet-teams" label="Team" counts=by_team />
        <h2 class="mt-6 font-medium">"Services that differ"</h2>
        <ServiceList services=drifted />
        <h2 class="mt-6 font-medium">"Upgrades"</h2>
        <p id="fleet-progress" class="mt-2 text-sm">
            {format!(
                "{} waiting for a decision · {} queued · {} open (at most {}) · {} merged · {} ended",
                progress.submitted, progress.queued, progress.open, progress.max_open, progress.merged, progress.ended
            )}
        </p>
        {admin.then(|| view! { <UpgradeForm hand_edited=hand_edited /> })}
        <BatchList batches=batches admin=admin my_id=my_id />
    }
}

#[component]
fn CountsTable(id: &'static str, label: &'static str, counts: Vec<ClassCounts>) -> impl IntoView {
    let classes = [
        DriftClass::Current,
        DriftClass::GeneratorUpgrade,
        DriftClass::HandEdit,
        DriftClass::Missing,
        DriftClass::Extra,
        DriftClass::Adopted,
    ];
    view! {
        <table id=id class="mt-2 w-full text-left text-sm">
            <thead><tr class="border-b border-slate-200">
                <th scope="col" class="py-1">{label}</th>
                <th scope="col">"services"</th>
                <th scope="col">"drifted"</th>
                {classes.map(|c| view! { <th scope="col">{c.as_str().replace('_', " ")}</th> })}
            </tr></thead>
            <tbody>
                {counts.into_iter().map(|row| view! {
                    <tr class="border-b border-slate-100">
                        <td class="py-1">{row.group.clone()}</td>
                        <td>{row.services}</td>
                        <td>{row.drifted}</td>
                        {classes.map(|c| view! { <td data-class=c.as_str()>{row.of(c)}</td> })}
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn ServiceList(services: Vec<ServiceDrift>) -> impl IntoView {
    if services.is_empty() {
        return view! { <p class="mt-2 text-sm text-slate-600">"Every live service is what meshport renders today."</p> }.into_any();
    }
    view! {
        <ul id="fleet-services" class="mt-2 space-y-2 text-sm">
            {services.into_iter().map(|service| {
                let name = format!("{}/{}", service.namespace, service.service);
                let note = if service.in_flight { " (a change set is in flight: not compared)".to_owned() } else { format!(" ({})", service.worst().as_str().replace('_', " ")) };
                view! {
                    <li data-service=name.clone()>
                        <a class="text-indigo-700 underline" href=format!("/services/{name}")>{name.clone()}</a>
                        {format!(" · team {}{note}", service.team)}
                        <ul class="ml-4 list-disc">
                            {service.files.into_iter().filter(|f| f.class != DriftClass::Current).map(|file| {
                                let by = file.rendered_by.map(|v| format!(", rendered by meshport {v}")).unwrap_or_default();
                                view! { <li data-class=file.class.as_str()>{format!("{}: {}{by}", file.path, file.class.as_str().replace('_', " "))}</li> }
                            }).collect_view()}
                        </ul>
                    </li>
                }
            }).collect_view()}
        </ul>
    }
    .into_any()
}

/// The upgrade form: a scope and, per hand-edited service, an explicit decision.
#[component]
fn UpgradeForm(hand_edited: Vec<ServiceDrift>) -> impl IntoView {
    view! {
        <form method="post" action="/fleet/upgrades" id="fleet-upgrade" class="mt-3 space-y-2 rounded border border-slate-200 bg-white p-3">
            <p class="text-sm font-medium">"Open upgrade change sets (one per service; another platform admin approves them)"</p>
            <label class="text-sm">"Services "
                <select name="scope" class="rounded border border-slate-300 px-2 py-1">
                    <option value="all">"all"</option>
                    <option value="namespace">"of the namespace"</option>
                    <option value="team">"of the team"</option>
                </select>
            </label>
            <label class="ml-2 text-sm">"named " <input name="value" class="rounded border border-slate-300 px-2 py-1" placeholder="prod-app" /></label>
            {hand_edited.into_iter().map(|service| {
                let name = format!("{}/{}", service.namespace, service.service);
                view! {
                    <fieldset class="text-sm">
                        <legend>{format!("{name} has hand edits:")}</legend>
                        <label><input type="radio" name=format!("decision:{name}") value="" checked /> " leave it out"</label>
                        <label class="ml-2"><input type="radio" name=format!("decision:{name}") value="replace" /> " replace hand edit"</label>
                        <label class="ml-2"><input type="radio" name=format!("decision:{name}") value="adopt" /> " adopt (keep the file)"</label>
                    </fieldset>
                }
            }).collect_view()}
            <button type="submit" class=BUTTON>"Open upgrades"</button>
        </form>
    }
}

#[component]
fn BatchList(batches: Vec<UpgradeBatch>, admin: bool, my_id: String) -> impl IntoView {
    view! {
        <ul id="fleet-batches" class="mt-3 space-y-3 text-sm">
            {batches.into_iter().map(|batch| {
                let waiting: Vec<_> = batch.changes.iter().filter(|c| c.status == RequestStatus::Submitted).cloned().collect();
                let may_approve = admin && batch.requested_by != my_id && !waiting.is_empty();
                view! {
                    <li class="rounded border border-slate-200 bg-white p-3" data-batch=batch.id.clone()>
                        <p>{format!("Batch {} ({}), {}", batch.id, batch.selection, batch.created_at.get(..19).unwrap_or(&batch.created_at))}</p>
                        <ul class="ml-4 list-disc">
                            {batch.changes.iter().map(|c| view! {
                                <li>
                                    <a class="text-indigo-700 underline" href=format!("/requests/{}", c.request_id)>{format!("{}/{}", c.namespace, c.service)}</a>
                                    {format!(" · {} · digest {}", c.status, c.digest.clone().unwrap_or_default())}
                                    {(!c.kept.is_empty()).then(|| format!(" · keeps {}", c.kept.join(", ")))}
                                    {c.pull_request.clone().map(|url| view! { " · " <a class="text-indigo-700 underline" href=url>"pull request"</a> })}
                                </li>
                            }).collect_view()}
                            {batch.skipped.iter().map(|s| view! { <li class="text-slate-600">{format!("left out: {s}")}</li> }).collect_view()}
                        </ul>
                        {may_approve.then(|| view! {
                            <form method="post" action=format!("/fleet/upgrades/{}/approve", batch.id) class="mt-2">
                                {waiting.iter().map(|c| view! {
                                    <input type="hidden" name=format!("digest:{}", c.request_id) value=c.digest.clone().unwrap_or_default() />
                                }).collect_view()}
                                <button type="submit" class=BUTTON>{format!("Approve these {} change sets", waiting.len())}</button>
                            </form>
                        })}
                    </li>
                }
            }).collect_view()}
        </ul>
    }
}
