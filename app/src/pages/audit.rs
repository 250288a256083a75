//! `/audit`: whether the trail verifies, downloads of the events of a period (CSV exact or
//! escaped for spreadsheets, JSON Lines, OCSF) and of the change-evidence report, and the
//! newest events.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use super::encode;
use crate::audit::audit_overview;

/// The audit page.
#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let period = move || {
        let q = query.read();
        (q.get("from").unwrap_or_default(), q.get("to").unwrap_or_default())
    };
    let link = move |format: &str| {
        let (from, to) = period();
        format!("/api/audit/export?format={format}&from={}&to={}", encode(&from), encode(&to))
    };
    let overview = Resource::new(|| (), |()| audit_overview());
    view! {
        <h1 class="text-2xl font-semibold">"Audit trail"</h1>
        <form method="get" action="/audit" class="mt-4 flex flex-wrap items-end gap-3">
            <label class="text-sm">
                "From" <input type="date" name="from" value=move || period().0 class="ml-1 rounded border border-slate-300 px-2 py-1" />
            </label>
            <label class="text-sm">
                "To (excluded)" <input type="date" name="to" value=move || period().1 class="ml-1 rounded border border-slate-300 px-2 py-1" />
            </label>
            <button type="submit" class="rounded border border-slate-300 px-3 py-1 text-sm hover:bg-slate-100 focus:outline-none focus:ring-2 focus:ring-indigo-500">
                "Apply"
            </button>
        </form>
        <nav aria-label="Downloads" class="mt-4 flex flex-wrap gap-3 text-sm">
            <a rel="external" id="download-csv" class="text-indigo-700 underline" href=move || link("csv")>"Events as CSV"</a>
            <a rel="external" id="download-csv-excel" class="text-indigo-700 underline" href=move || link("csv-excel")>"Events for spreadsheets (CSV)"</a>
            <a rel="external" id="download-jsonl" class="text-indigo-700 underline" href=move || link("jsonl")>"Events as JSON Lines"</a>
            <a rel="external" id="download-ocsf" class="text-indigo-700 underline" href=move || link("ocsf")>"Events as OCSF (6003)"</a>
            <a rel="external" id="download-evidence" class="text-indigo-700 underline" href="/api/audit/evidence?format=csv">"Change evidence (CSV)"</a>
        </nav>
        <Suspense fallback=|| view! { <p class="mt-4 text-slate-500">"Verifying…"</p> }>
            {move || Suspend::new(async move {
                match overview.await {
                    Err(error) => view! { <p role="alert" class="mt-4 text-red-700">{error.to_string()}</p> }.into_any(),
                    Ok(overview) => {
                        let status = match &overview.broken {
                            None => format!("Intact: {} events, {} signed checkpoints.", overview.events, overview.checkpoints),
                            Some((seq, reason)) => format!("Broken at event {seq}: {reason}"),
                        };
                        let intact = overview.broken.is_none();
                        view! {
                            <p id="audit-status" role="status"
                                class=if intact { "mt-4 rounded bg-emerald-50 px-3 py-2 text-emerald-900" } else { "mt-4 rounded bg-red-50 px-3 py-2 text-red-900" }>
                                {status}
                            </p>
                            <table class="mt-4 w-full text-left text-sm">
                                <caption class="sr-only">"Newest events"</caption>
                                <thead><tr class="border-b border-slate-200">
                                    <th scope="col" class="py-1">"#"</th>
                                    <th scope="col">"When (UTC)"</th>
                                    <th scope="col">"Who"</th>
                                    <th scope="col">"What"</th>
                                    <th scope="col">"On"</th>
                                    <th scope="col">"Outcome"</th>
                                </tr></thead>
                                <tbody>
                                    {overview.recent.into_iter().map(|e| view! {
                                        <tr class="border-b border-slate-100">
                                            <td class="py-1">{e.seq}</td>
                                            <td>{e.occurred_at}</td>
                                            <td>{e.actor}</td>
                                            <td>{e.action}</td>
                                            <td>{e.target}</td>
                                            <td>{e.outcome}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}
