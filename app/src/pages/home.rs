//! The start page: what meshport does, how onboarding works, and whether the platform is ready.

use leptos::prelude::*;

use crate::platform::{CheckState, Readiness, platform_status};

/// The steps a service goes through, shown on the start page.
const STEPS: [(&str, &str); 4] = [
    (
        "Describe the service",
        "Name, team, image, ports, secrets, allowed callers and rotation period, in one form.",
    ),
    (
        "Review every artifact",
        "The Kubernetes manifests, Linkerd policy, Vault policy and role are shown before submitting.",
    ),
    (
        "Approval by a platform admin",
        "Someone other than the requester approves or rejects, with a reason.",
    ),
    (
        "Provisioned and proposed",
        "meshport creates the Vault objects and opens a pull request to the GitOps repository.",
    ),
];

#[component]
pub fn HomePage() -> impl IntoView {
    let readiness = Resource::new(|| (), |_| platform_status());
    view! {
        <div class="space-y-8">
            <Introduction />
            <div class="rounded-lg border border-slate-200 bg-white p-4">
                <h2 class="text-lg font-semibold">"Platform status"</h2>
                <Suspense fallback=|| view! { <p class="text-slate-500">"Checking…"</p> }>
                    {move || Suspend::new(async move {
                        match readiness.await {
                            Ok(report) => view! { <ReadinessList report /> }.into_any(),
                            Err(_) => {
                                view! {
                                    <p class="text-red-700">"The status could not be read."</p>
                                }
                                    .into_any()
                            }
                        }
                    })}
                </Suspense>
            </div>
        </div>
    }
}

/// What meshport does and, on request, the steps: the start page's island.
#[island]
fn Introduction() -> impl IntoView {
    // Effects run only in the browser, so this marks the island once the WASM has hydrated it.
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    let (steps_open, set_steps_open) = signal(false);

    view! {
        <section data-hydrated=move || hydrated.get().to_string() class="space-y-8">
            <div>
                <h1 class="text-3xl font-bold tracking-tight">"Join the service mesh"</h1>
                <p class="mt-2 max-w-2xl text-slate-600">
                    "meshport turns one form into the Kubernetes manifests, Linkerd policies and Vault objects a service needs to run with mutual TLS and managed secrets."
                </p>
            </div>

            <div class="rounded-lg border border-slate-200 bg-white p-4">
                <button
                    type="button"
                    id="how-it-works"
                    class="rounded-md bg-indigo-600 px-3 py-2 text-sm font-medium text-white hover:bg-indigo-700 focus:outline-none focus:ring-2 focus:ring-indigo-500 focus:ring-offset-2"
                    aria-expanded=move || steps_open.get().to_string()
                    aria-controls="onboarding-steps"
                    on:click=move |_| set_steps_open.update(|open| *open = !*open)
                >
                    {move || if steps_open.get() { "Hide the steps" } else { "How onboarding works" }}
                </button>
                <ol
                    id="onboarding-steps"
                    class="mt-4 list-decimal space-y-2 pl-6"
                    hidden=move || !steps_open.get()
                >
                    {STEPS
                        .iter()
                        .map(|(title, text)| {
                            view! {
                                <li>
                                    <span class="font-medium">{*title}</span>
                                    ": "
                                    <span class="text-slate-600">{*text}</span>
                                </li>
                            }
                        })
                        .collect_view()}
                </ol>
            </div>
        </section>
    }
}

#[component]
fn ReadinessList(report: Readiness) -> impl IntoView {
    let row = |name: &'static str, state: CheckState| {
        let (label, class) = match state {
            CheckState::Ok => ("ready", "text-emerald-700"),
            CheckState::Unavailable => ("unavailable", "text-red-700"),
        };
        view! {
            <li class="flex justify-between">
                <span>{name}</span>
                <span class=class data-check=name>
                    {label}
                </span>
            </li>
        }
    };
    view! {
        <ul class="mt-2 max-w-sm space-y-1">
            {row("Database", report.database)} {row("Vault", report.vault)}
        </ul>
    }
}
