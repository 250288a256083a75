//! `/services`: the services being onboarded or live; `/services/:namespace/:service`: one
//! service with its live version, its history of change sets, and the ways to change it
//! (a change form, an offboarding request), each a change set a second person decides on.

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::onboard::{LiveService, ServiceForm};
use super::requests::RequestTable;
use super::PageLinks;
use super::onboard::PostedForm;
use crate::access::Role;
use crate::account::whoami;
use crate::onboarding::OnboardingRequest;
use crate::request_api::{
    RequestOffboarding, ServiceDetail, form_rules, get_service, services_page,
};

/// The services the caller may see, with their version and any change in flight, a page at
/// a time by namespace and name.
#[component]
pub fn ServicesPage() -> impl IntoView {
    let query = use_query_map();
    let after = move || query.read().get("after");
    let services = Resource::new(after, services_page);
    view! {
        <h1 class="text-2xl font-semibold">"Services"</h1>
        <p class="mt-1 text-sm text-slate-600">"Services being onboarded or live; each links to its versions, its changes and its status."</p>
        <Suspense fallback=|| view! { <p class="mt-4 text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match services.await {
                    Err(error) => view! { <p role="alert" class="mt-4 text-red-700">{error.to_string()}</p> }.into_any(),
                    Ok(page) if page.items.is_empty() => view! { <p id="services" class="mt-2 text-slate-600">"No service is onboarded yet."</p> }.into_any(),
                    Ok(page) => view! {
                        <table id="services" class="mt-2 w-full text-left text-sm">
                            <thead><tr class="border-b border-slate-200">
                                <th scope="col" class="py-1">"Service"</th>
                                <th scope="col">"Team"</th>
                                <th scope="col">"Version"</th>
                                <th scope="col">"Change in flight"</th>
                            </tr></thead>
                            <tbody>{page.items.into_iter().map(service_row).collect_view()}</tbody>
                        </table>
                        <PageLinks path="/services" first=after().is_none() next=page.next />
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

fn service_row(service: ServiceDetail) -> impl IntoView {
    let name = format!("{}/{}", service.namespace, service.service);
    view! {
        <tr class="border-b border-slate-100" data-service=name.clone()>
            <td class="py-1">
                <a class="text-indigo-700 underline" href=format!("/services/{name}")>{name.clone()}</a>
            </td>
            <td>{service.team}</td>
            <td>{service.version}</td>
            <td>{service.open_change.map(|id| view! {
                <a class="text-indigo-700 underline" href=format!("/requests/{id}")>"open change set"</a>
            })}</td>
        </tr>
    }
}

/// One service: version, history, and the change and offboarding actions.
#[component]
pub fn ServicePage() -> impl IntoView {
    let params = use_params_map();
    let key = move || {
        let params = params.read();
        (params.get("namespace").unwrap_or_default(), params.get("service").unwrap_or_default())
    };
    let offboard = ServerAction::<RequestOffboarding>::new();
    let detail = Resource::new(
        move || (key(), offboard.version().get()),
        |((namespace, service), _)| get_service(namespace, service),
    );
    let me = Resource::new(|| (), |()| whoami());
    view! {
        <Suspense fallback=|| view! { <p class="text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let me = me.await.ok().flatten();
                match detail.await {
                    Err(error) => view! { <p role="alert" class="text-red-700">{error.to_string()}</p> }.into_any(),
                    Ok(detail) => {
                        let may_change = me.as_ref().is_some_and(|p| {
                            p.has(Role::Developer) && p.teams.contains(&detail.team)
                        });
                        let may_offboard = may_change
                            || me.as_ref().is_some_and(|p| p.has(Role::PlatformAdmin));
                        view! { <Service detail may_change may_offboard offboard /> }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn Service(
    detail: ServiceDetail,
    may_change: bool,
    may_offboard: bool,
    offboard: ServerAction<RequestOffboarding>,
) -> impl IntoView {
    let name = format!("{}/{}", detail.namespace, detail.service);
    let live = detail.spec.is_some();
    let idle = live && detail.open_change.is_none();
    let error = move || offboard.value().get().and_then(Result::err).map(|e| e.to_string());
    let (namespace, service) = (detail.namespace.clone(), detail.service.clone());
    view! {
        <h1 class="text-2xl font-semibold">{name.clone()}</h1>
        <p class="mt-1 text-sm text-slate-600">
            "Team " {detail.team.clone()} " · "
            <span id="service-version">{format!("version {}", detail.version)}</span>
            {detail.spec.as_ref().map(|spec| view! { " · image " <code id="live-image">{spec.image.clone()}</code> })}
        </p>
        <p class="mt-2 flex gap-4 text-sm">
            <a id="service-status" class="text-indigo-700 underline" href=format!("/status/{name}")>"Certificates and secret rotation"</a>
            {detail.open_change.clone().map(|id| view! {
                <a id="open-change" class="text-indigo-700 underline" href=format!("/requests/{id}")>"The change set in flight"</a>
            })}
            {(idle && may_change).then(|| view! {
                <a id="change-service" class="text-indigo-700 underline" href=format!("/services/{name}/change")>"Propose a change"</a>
            })}
        </p>
        <section aria-labelledby="history-heading" class="mt-6">
            <h2 id="history-heading" class="font-medium">"Versions and change sets"</h2>
            <RequestTable id="history" requests=detail.history.clone() empty="No change sets." />
        </section>
        {(idle && may_offboard).then(|| view! {
            <section aria-labelledby="offboard-heading" class="mt-6 rounded-lg border border-red-200 bg-white p-4">
                <h2 id="offboard-heading" class="font-medium">"Offboard"</h2>
                <p class="text-sm text-slate-600">"Removes the manifests by pull request, then the Vault role and policy; a second platform admin approves it first."</p>
                <ActionForm action=offboard attr:class="mt-2 space-y-2">
                    <input type="hidden" name="namespace" value=namespace />
                    <input type="hidden" name="service" value=service />
                    <label class="block text-sm" for="offboard-justification">"Why it leaves the mesh"</label>
                    <textarea id="offboard-justification" name="justification" rows="2" required class="w-full rounded border border-slate-300 px-2 py-1"></textarea>
                    <button type="submit" id="request-offboarding" class="rounded bg-red-600 px-3 py-1 text-white hover:bg-red-700">"Ask for offboarding"</button>
                </ActionForm>
                <p role="alert" id="offboard-error" class="mt-2 text-sm text-red-700">{error}</p>
            </section>
        })}
    }
}

/// `/services/:namespace/:service/change`: the service form opened with the live spec; its
/// submission is a change set that a platform admin other than the requester approves.
#[component]
pub fn ChangePage() -> impl IntoView {
    let params = use_params_map();
    let key = move || {
        let params = params.read();
        (params.get("namespace").unwrap_or_default(), params.get("service").unwrap_or_default())
    };
    let detail = Resource::new(key, |(namespace, service)| get_service(namespace, service));
    let rules = Resource::new(|| (), |()| form_rules());
    view! {
        <Suspense fallback=|| view! { <p class="text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let rules = rules.await.unwrap_or_default();
                match detail.await {
                    Err(error) => view! { <p role="alert" class="text-red-700">{error.to_string()}</p> }.into_any(),
                    Ok(ServiceDetail { spec: None, namespace, service, .. }) => view! {
                        <p role="alert" class="text-red-700">{format!("{namespace}/{service} is not live yet: it can change once its onboarding is applied.")}</p>
                    }.into_any(),
                    Ok(ServiceDetail { spec: Some(spec), namespace, service, version, .. }) => {
                        // The change set needs its own justification, not the live one's.
                        let initial = OnboardingRequest { justification: String::new(), ..spec.without_secret_values() };
                        let shown = PostedForm::shown(&initial);
                        let live = LiveService { namespace: namespace.clone(), service: service.clone(), spec: initial };
                        view! {
                            <h1 class="text-2xl font-semibold">{format!("Change {namespace}/{service}")}</h1>
                            <p class="mt-1 text-sm text-slate-600">
                                {format!("The form holds version {version}. Say why in the justification; a platform admin other than you approves the change, and only what differs is written.")}
                            </p>
                            <ServiceForm shown rules live=Some(live) />
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}
