//! `/requests`: the requests the caller may see; `/requests/:id`: one request with its
//! provisioning timeline, pull request and drift, and the platform admin's decisions and
//! actions (plain forms, so they work without JavaScript; the server checks every one).

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::PageLinks;

use crate::access::Role;
use crate::account::whoami;
use crate::onboarding::ChangeKind;
use crate::onboarding::RequestStatus;
use crate::request_api::{
    ActOnRequest, JobSummary, PreviewFile, RequestDetail, RequestSummary, WithdrawRequest,
    get_request, request_progress, requests_page,
};

/// The list of requests, newest first, a page at a time; for platform admins, those of the
/// page that wait for a decision come first.
#[component]
pub fn RequestsPage() -> impl IntoView {
    let query = use_query_map();
    let after = move || query.read().get("after");
    let requests = Resource::new(after, requests_page);
    let me = Resource::new(|| (), |()| whoami());
    view! {
        <h1 class="text-2xl font-semibold">"Requests"</h1>
        <Suspense fallback=|| view! { <p class="mt-4 text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let me = me.await.ok().flatten();
                let admin = me.as_ref().is_some_and(|p| p.has(Role::PlatformAdmin));
                match requests.await {
                    Err(error) => view! { <p role="alert" class="mt-4 text-red-700">{error.to_string()}</p> }.into_any(),
                    Ok(page) => {
                        let first = after().is_none();
                        let (waiting, rest): (Vec<_>, Vec<_>) = page.items.into_iter().partition(|r| {
                            admin && r.status == RequestStatus::Submitted
                                && me.as_ref().is_some_and(|p| p.user_id != r.requested_by)
                        });
                        view! {
                            {admin.then(|| view! {
                                <h2 class="mt-6 font-medium">"Waiting for your decision"</h2>
                                <RequestTable id="queue" requests=waiting empty="Nothing waits for you." />
                                <h2 class="mt-6 font-medium">"All requests"</h2>
                            })}
                            <RequestTable id="requests" requests=rest empty="No requests yet." />
                            <PageLinks path="/requests" first next=page.next />
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
pub(super) fn RequestTable(
    id: &'static str,
    requests: Vec<RequestSummary>,
    empty: &'static str,
) -> impl IntoView {
    if requests.is_empty() {
        return view! { <p id=id class="mt-2 text-slate-600">{empty}</p> }.into_any();
    }
    view! {
        <table id=id class="mt-2 w-full text-left text-sm">
            <thead><tr class="border-b border-slate-200">
                <th scope="col" class="py-1">"Service"</th>
                <th scope="col">"Change"</th>
                <th scope="col">"Team"</th>
                <th scope="col">"Status"</th>
                <th scope="col">"Submitted (UTC)"</th>
            </tr></thead>
            <tbody>{requests.into_iter().map(row).collect_view()}</tbody>
        </table>
    }
    .into_any()
}

fn row(request: RequestSummary) -> impl IntoView {
    view! {
        <tr class="border-b border-slate-100">
            <td class="py-1">
                <a class="text-indigo-700 underline" href=format!("/requests/{}", request.id)>
                    {format!("{}/{}", request.namespace, request.service)}
                </a>
            </td>
            <td data-kind=request.kind.as_str()>
                {request.kind.as_str()}
                {request.version.map(|v| format!(" (v{v})"))}
            </td>
            <td>{request.team}</td>
            <td><StatusBadge status=request.status /></td>
            <td>{request.created_at.get(..16).unwrap_or_default().replace('T', " ")}</td>
        </tr>
    }
}

/// A request's status as a coloured label.
#[component]
pub(super) fn StatusBadge(status: RequestStatus) -> impl IntoView {
    let colour = match status {
        RequestStatus::Submitted | RequestStatus::Approved => "bg-amber-100 text-amber-900",
        RequestStatus::Provisioning | RequestStatus::PrOpen => "bg-sky-100 text-sky-900",
        RequestStatus::Merged => "bg-emerald-100 text-emerald-900",
        RequestStatus::Rejected | RequestStatus::Failed => "bg-red-100 text-red-900",
        RequestStatus::Offboarded | RequestStatus::Withdrawn => "bg-slate-200 text-slate-700",
    };
    view! {
        <span data-status=status.as_str() class=format!("rounded px-2 py-0.5 text-xs font-medium {colour}")>
            {status.as_str().replace('_', " ")}
        </span>
    }
}

/// One request, drawn on the server: its decision and admin forms are plain forms (the server
/// checks the caller's role on every action), and while provisioning runs the [`FollowProgress`]
/// island reloads the page when it moves on.
#[component]
pub fn RequestPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let detail = Resource::new(id, get_request);
    let me = Resource::new(|| (), |()| whoami());
    let act = ServerAction::<ActOnRequest>::new();
    let withdraw = ServerAction::<WithdrawRequest>::new();
    view! {
        <Suspense fallback=|| view! { <p class="text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let me = me.await.ok().flatten();
                let admin = me.as_ref().is_some_and(|p| p.has(Role::PlatformAdmin));
                let my_id = me.map(|p| p.user_id).unwrap_or_default();
                match detail.await {
                    Err(error) => view! { <p role="alert" class="text-red-700">{error.to_string()}</p> }.into_any(),
                    Ok(detail) => {
                        let follow = detail.running().then(|| {
                            view! { <FollowProgress id=detail.request.id.clone() progress=detail.progress() /> }
                        });
                        view! { <Detail detail admin my_id act withdraw /> {follow} }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// While provisioning runs, asks the server every two seconds where the request stands
/// ([`request_progress`], one short string) and reloads the page once that differs from
/// `progress`, the state the page was drawn in. The island is all of the request page's
/// JavaScript; everything it shows is the server's HTML.
#[island]
fn FollowProgress(id: String, progress: String) -> impl IntoView {
    Effect::new(move |_| {
        let (id, progress) = (id.clone(), progress.clone());
        let poll = move || {
            let (id, progress) = (id.clone(), progress.clone());
            leptos::task::spawn_local(async move {
                if request_progress(id).await.is_ok_and(|now| now != progress) {
                    let _ = window().location().reload();
                }
            });
        };
        if let Ok(handle) = set_interval_with_handle(poll, std::time::Duration::from_secs(2)) {
            on_cleanup(move || handle.clear());
        }
    });
    view! { <span id="follow-progress" class="sr-only" aria-live="polite">"Provisioning runs; this page follows it."</span> }
}

#[component]
fn Detail(
    detail: RequestDetail,
    admin: bool,
    my_id: String,
    act: ServerAction<ActOnRequest>,
    withdraw: ServerAction<WithdrawRequest>,
) -> impl IntoView {
    let request = detail.request.clone();
    let failed = detail.jobs.last().is_some_and(|job| job.state == "failed");
    let cancelled = detail.jobs.last().is_some_and(|job| job.state == "cancelled");
    let live = matches!(request.status, RequestStatus::PrOpen | RequestStatus::Merged)
        && request.kind != ChangeKind::Offboard;
    let withdrawable = (request.status == RequestStatus::Submitted
        && (admin || request.requested_by == my_id))
        || (request.status == RequestStatus::Failed && admin);
    let error = move || {
        act.value()
            .get()
            .and_then(Result::err)
            .or_else(|| withdraw.value().get().and_then(Result::err))
            .map(|e| e.to_string())
    };
    let (id, action_id, withdraw_id) = (request.id.clone(), request.id.clone(), request.id.clone());
    let service_page = format!("/services/{}/{}", request.namespace, request.service);
    let heading = match request.kind {
        ChangeKind::Onboard => "Onboarding of",
        ChangeKind::Modify => "Change of",
        ChangeKind::Offboard => "Offboarding of",
        ChangeKind::Upgrade => "Generator upgrade of",
    };
    let head_to_approve = detail
        .pull_requests
        .iter()
        .any(|pr| pr.changed_after_approval && pr.merged_head_sha.is_some());
    view! {
        <h1 class="text-2xl font-semibold">
            {heading} " "
            <a id="service-page" class="text-indigo-700 underline" href=service_page>{format!("{}/{}", request.namespace, request.service)}</a>
        </h1>
        <p class="mt-1 text-sm text-slate-600">
            "Team " {request.team.clone()} " · " <span id="change-kind" data-kind=request.kind.as_str()>{request.kind.as_str()}</span>
            " · " <StatusBadge status=request.status />
            {request.version.map(|v| view! { " · " <span id="version">{format!("version {v}")}</span> })}
        </p>
        {request.digest.clone().map(|digest| view! {
            <p class="mt-1 text-xs text-slate-600">
                "Content digest (what an approval binds to): "
                <code id="digest" class="break-all">{digest}</code>
            </p>
        })}
        <Differences detail=detail.clone() />
        {request.decision_reason.clone().map(|reason| view! {
            <p class="mt-2 text-sm">"Reason given: " <span id="decision-reason">{reason}</span></p>
        })}
        {(!detail.pull_requests.is_empty()).then(|| view! {
            <ul id="pull-requests" class="mt-2 space-y-1 text-sm">
                {detail.pull_requests.iter().map(|pr| {
                    let merged = pr.merge_commit_sha.clone().map(|sha| format!(", merge commit {}", sha.get(..12).unwrap_or(&sha)));
                    let short = |sha: &str| sha.get(..12).unwrap_or(sha).to_owned();
                    let warning = pr.changed_after_approval.then(|| {
                        let merged_head = pr.merged_head_sha.as_deref().map_or_else(|| "an unreported head".to_owned(), short);
                        format!(
                            "Changed after approval: merged with {merged_head}, but the approval covers {}. Commits were pushed to the branch after approval; the request is not recorded as merged until a platform admin other than the requester approves the merged head.",
                            short(&pr.approved_head_sha),
                        )
                    });
                    view! {
                        <li data-pr-kind=pr.kind.clone() data-pr-state=pr.state.clone() data-changed-after-approval=pr.changed_after_approval.to_string()>
                            {format!("{} pull request ({}{}): ", pr.kind, pr.state, merged.unwrap_or_default())}
                            <a rel="external" class="text-indigo-700 underline" href=pr.url.clone()>{pr.branch.clone()}</a>
                            {warning.map(|text| view! {
                                <p role="alert" class="changed-after-approval mt-1 rounded border border-red-300 bg-red-50 px-2 py-1 text-red-900">{text}</p>
                            })}
                        </li>
                    }
                }).collect_view()}
            </ul>
        })}
        {live.then(|| view! {
            <p class="mt-2 text-sm">
                <a id="service-status" class="text-indigo-700 underline" href=format!("/status/{}/{}", request.namespace, request.service)>
                    "Certificates and secret rotation"
                </a>
            </p>
        })}
        <p role="alert" id="action-error" class="mt-2 text-sm text-red-700">{error}</p>
        {(admin && request.status == RequestStatus::Submitted).then(|| view! {
            <section aria-labelledby="decide" class="mt-6 rounded-lg border border-slate-200 bg-white p-4">
                <h2 id="decide" class="font-medium">"Decision"</h2>
                <ActionForm action=act attr:class="mt-2 space-y-2">
                    <input type="hidden" name="id" value=id.clone() />
                    <label class="block text-sm" for="reason">"Reason (required to reject)"</label>
                    <textarea id="reason" name="reason" rows="2" class="w-full rounded border border-slate-300 px-2 py-1"></textarea>
                    <div class="flex gap-2">
                        <button type="submit" id="approve" name="action" value="approve" class="rounded bg-emerald-600 px-3 py-1 text-white hover:bg-emerald-700">"Approve"</button>
                        <button type="submit" id="reject" name="action" value="reject" class="rounded bg-red-600 px-3 py-1 text-white hover:bg-red-700">"Reject"</button>
                    </div>
                </ActionForm>
            </section>
        })}
        {admin.then(|| {
            let buttons: Vec<(&str, &str)> = [
                (failed || (cancelled && request.status == RequestStatus::Failed), ("retry", "Retry")),
                (failed, ("cancel", "Cancel")),
                (live, ("reconcile", "Reconcile Vault")),
                (head_to_approve, ("approve_head", "Approve merged head")),
            ]
            .into_iter()
            .filter_map(|(shown, button)| shown.then_some(button))
            .collect();
            (!buttons.is_empty()).then(|| view! {
                <section aria-label="Admin actions" class="mt-4 flex flex-wrap gap-2">
                    {buttons.into_iter().map(|(action, label)| {
                        let id = action_id.clone();
                        view! {
                        <ActionForm action=act>
                            <input type="hidden" name="id" value=id />
                            <input type="hidden" name="action" value=action />
                            <input type="hidden" name="reason" value="" />
                            <button type="submit" id=format!("action-{action}") class="rounded border border-slate-300 px-3 py-1 text-sm hover:bg-slate-100">{label}</button>
                        </ActionForm>
                    }}).collect_view()}
                </section>
            })
        })}
        {withdrawable.then(|| view! {
            <ActionForm action=withdraw attr:class="mt-4">
                <input type="hidden" name="id" value=withdraw_id />
                <button type="submit" id="withdraw" class="rounded border border-slate-300 px-3 py-1 text-sm hover:bg-slate-100">"Withdraw this change set"</button>
            </ActionForm>
        })}
        <section aria-labelledby="timeline" class="mt-6">
            <h2 id="timeline" class="font-medium">"Provisioning"</h2>
            {if detail.jobs.is_empty() {
                view! { <p class="mt-2 text-sm text-slate-600">"Nothing runs until a platform admin approves."</p> }.into_any()
            } else {
                view! { <ol id="jobs" class="mt-2 space-y-3">{detail.jobs.into_iter().map(job).collect_view()}</ol> }.into_any()
            }}
        </section>
        {detail.drift.map(|drift| {
            let changes = drift.changes.len();
            view! {
                <p id="drift" class="mt-4 text-sm">
                    {if changes == 0 {
                        format!("Vault matches the approved state (checked {}).", drift.checked_at)
                    } else {
                        format!("{changes} Vault object(s) drifted from the approved state (checked {}).", drift.checked_at)
                    }}
                </p>
            }
        })}
    }
}

fn job(job: JobSummary) -> impl IntoView {
    view! {
        <li class="rounded border border-slate-200 bg-white p-3" data-job-state=job.state.clone()>
            <p class="text-sm font-medium">{format!("{} · {} · attempt {}", job.kind, job.state, job.attempts)}</p>
            {job.last_error.map(|error| view! { <p class="text-sm text-red-700">{error}</p> })}
            <ul class="mt-1 list-disc pl-5 text-sm">
                {job.steps.into_iter().map(|step| {
                    // The Vault objects a step wrote (or removed), by API path.
                    let paths: Vec<String> = ["changed", "removed"]
                        .iter()
                        .filter_map(|key| step.detail[*key].as_array())
                        .flatten()
                        .filter_map(|path| path.as_str().map(str::to_owned))
                        .collect();
                    view! {
                        <li data-step=step.name.clone()>
                            {format!("{} — {}", step.name, step.finished_at.get(..19).unwrap_or_default())}
                            {(!paths.is_empty()).then(|| view! {
                                <ul class="pl-4 font-mono text-xs text-slate-600">
                                    {paths.into_iter().map(|p| { let shown = p.clone(); view! { <li data-vault-path=p>{shown}</li> } }).collect_view()}
                                </ul>
                            })}
                        </li>
                    }
                }).collect_view()}
            </ul>
        </li>
    }
}

/// What a change set changes: spec fields against the version it replaces, and the files.
#[component]
fn Differences(detail: RequestDetail) -> impl IntoView {
    let differences = detail.differences;
    let files = detail.files;
    view! {
        {(!differences.is_empty()).then(|| view! {
            <section aria-labelledby="differences-heading" class="mt-4">
                <h2 id="differences-heading" class="font-medium">"Changes to the live version"</h2>
                <table id="differences" class="mt-2 w-full text-left text-sm">
                    <thead><tr class="border-b border-slate-200">
                        <th scope="col" class="py-1">"Field"</th>
                        <th scope="col">"Live"</th>
                        <th scope="col">"Proposed"</th>
                    </tr></thead>
                    <tbody>
                        {differences.into_iter().map(|d| {
                            let field = d.field.clone();
                            view! {
                                <tr class="border-b border-slate-100 align-top" data-field=field>
                                    <td class="py-1 font-mono text-xs">{d.field}</td>
                                    <td class="font-mono text-xs break-all">{d.from.unwrap_or_else(|| "—".into())}</td>
                                    <td class="font-mono text-xs break-all">{d.to.unwrap_or_else(|| "—".into())}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
        })}
        {(!files.is_empty()).then(|| view! {
            <section aria-labelledby="files-heading" class="mt-4">
                <h2 id="files-heading" class="font-medium">"What it writes: manifests (the pull request) and Vault objects (by API path)"</h2>
                <ul id="change-files" class="mt-2 space-y-1 text-sm">
                    {files.into_iter().map(changed_file).collect_view()}
                </ul>
            </section>
        })}
    }
}

/// A file a change set writes: how it changes (and, in a preview, how the repository's copy
/// compares), its contents folded.
pub(super) fn changed_file(file: PreviewFile) -> impl IntoView {
    let change = file.change.unwrap_or_default();
    let repository = file.repository.unwrap_or_default();
    let suffix =
        if repository.is_empty() { String::new() } else { format!(" [repository: {repository}]") };
    view! {
        <li data-path=file.path.clone() data-change=change.clone() data-repository=repository>
            <details>
                <summary class="cursor-pointer font-mono text-xs">{format!("{change}: {}{suffix}", file.path)}</summary>
                <pre class="mt-1 overflow-x-auto rounded bg-slate-900 p-2 text-xs text-slate-100">{file.contents}</pre>
            </details>
        </li>
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;
    use crate::request_api::PullRequestSummary;

    fn detail(changed_after_approval: bool) -> RequestDetail {
        RequestDetail {
            request: RequestSummary {
                id: "0c1e".into(),
                kind: crate::onboarding::ChangeKind::Onboard,
                base_change: None,
                digest: None,
                version: None,
                service: "cart".into(),
                namespace: "prod-app".into(),
                team: "cart".into(),
                requested_by: "dana".into(),
                status: RequestStatus::PrOpen,
                created_at: "2026-12-07T04:00:00Z".into(),
                decided_by: Some("alex".into()),
                decision_reason: None,
            },
            jobs: Vec::new(),
            drift: None,
            pull_requests: vec![PullRequestSummary {
                kind: "onboarding".into(),
                url: "https://git.example/shop/gitops/pull/7".into(),
                branch: "meshport/cart-0c1e".into(),
                state: "merged".into(),
                merge_commit_sha: Some("9f1c2e".into()),
                approved_head_sha: "aaaaaaaaaaaaaaaaaaaa".into(),
                merged_head_sha: Some("bbbbbbbbbbbbbbbbbbbb".into()),
                changed_after_approval,
            }],
            differences: Vec::new(),
            files: Vec::new(),
        }
    }

    fn render(detail: RequestDetail) -> String {
        Owner::new().with(|| {
            let act = ServerAction::<ActOnRequest>::new();
            let withdraw = ServerAction::<WithdrawRequest>::new();
            view! { <Detail detail admin=true my_id="alex".to_owned() act withdraw /> }.to_html()
        })
    }

    #[test]
    fn the_page_follows_provisioning_only_while_it_runs_and_sees_every_step() {
        use crate::request_api::JobSummary;
        let mut detail = detail(false);
        assert!(!detail.running(), "a merged request does not change by itself");
        detail.request.status = RequestStatus::Approved;
        detail.jobs.push(JobSummary {
            id: "j1".into(),
            kind: "provision".into(),
            state: "running".into(),
            attempts: 1,
            last_error: None,
            next_run_at: "2026-12-07T04:00:00Z".into(),
            steps: Vec::new(),
        });
        assert!(detail.running());
        let before = detail.progress();
        detail.jobs[0].steps.push(crate::request_api::StepSummary {
            name: "vault_policy".into(),
            finished_at: "2026-12-07T04:00:01Z".into(),
            detail: serde_json::Value::Null,
        });
        assert_ne!(detail.progress(), before, "a finished step changes the page");
        let step = detail.progress();
        detail.request.status = RequestStatus::PrOpen;
        detail.jobs[0].state = "done".into();
        assert_ne!(detail.progress(), step);
        assert!(!detail.running());
    }

    #[test]
    fn a_pull_request_changed_after_approval_is_shown_with_a_warning_and_the_admin_action() {
        let html = render(detail(true));
        assert!(html.contains(r#"data-changed-after-approval="true""#), "{html}");
        assert!(
            html.contains("Changed after approval: merged with bbbbbbbbbbbb, but the approval covers aaaaaaaaaaaa"),
            "{html}"
        );
        assert!(html.contains(r#"id="action-approve_head""#), "{html}");

        let html = render(detail(false));
        assert!(!html.contains("Changed after approval"), "{html}");
        assert!(!html.contains("approve_head"), "{html}");
    }
}
