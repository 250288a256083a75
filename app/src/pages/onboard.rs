//! `/onboard`: the onboarding form. A plain HTML form posted to `submit_form`, so it works
//! without JavaScript; once hydrated, every change runs the shared validator in the browser and
//! shows each field's errors beside it, and "Preview" shows every file the request would create.
//! Secret values are write-only: the inputs are never filled back.

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use crate::access::AppError;
use crate::onboarding::{Alphabet, FieldError, OnboardForm, SECRET_ROWS};
use crate::request_api::{PreviewForm, SubmitForm, form_rules};

/// The onboarding page.
#[component]
pub fn OnboardPage() -> impl IntoView {
    let form = RwSignal::new(OnboardForm::default());
    let touched = RwSignal::new(false);
    let rules = Resource::new(|| (), |()| form_rules());
    let submit = ServerAction::<SubmitForm>::new();
    let preview = ServerAction::<PreviewForm>::new();
    // The browser's judgement, from the same validator the server runs.
    let errors = Memo::new(move |_| {
        let rules = rules.get().and_then(Result::ok).unwrap_or_default();
        form.read().errors(&rules)
    });
    let server_errors = move || match submit.value().get() {
        Some(Err(AppError::InvalidRequest(errors))) => errors.0,
        _ => Vec::new(),
    };
    let messages = move |field: &str| {
        let mut all = if touched.get() { errors.get() } else { Vec::new() };
        all.extend(server_errors());
        all.into_iter().filter(|e| belongs(e, field)).map(|e| e.message).collect::<Vec<_>>()
    };
    let other_error = move || match submit.value().get() {
        Some(Err(AppError::InvalidRequest(_))) | Some(Ok(_)) | None => None,
        Some(Err(error)) => Some(error.to_string()),
    };
    // Marks the form once the WASM has hydrated it (the browser tests wait for it).
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(id)) = submit.value().get() {
            navigate(&format!("/requests/{id}"), Default::default());
        }
    });
    // One labelled input (or, `multiline`, a text area) bound to a field of the form.
    let input = move |name: &'static str,
                      label: &'static str,
                      hint: &'static str,
                      multiline: bool,
                      get: fn(&OnboardForm) -> String,
                      set: fn(&mut OnboardForm, String)| {
        let on_input = move |ev: leptos::ev::Event| {
            touched.set(true);
            form.update(|f| set(f, event_target_value(&ev)));
        };
        let control = if multiline {
            view! {
                <textarea id=name name=format!("form[{name}]") rows="3"
                    class="w-full rounded border border-slate-300 px-2 py-1 font-mono text-sm"
                    on:input=on_input>
                    {get(&OnboardForm::default())}
                </textarea>
            }
            .into_any()
        } else {
            view! {
                <input id=name name=format!("form[{name}]") type="text"
                    class="w-full rounded border border-slate-300 px-2 py-1"
                    value=move || get(&form.read()) on:input=on_input />
            }
            .into_any()
        };
        view! { <Field name label hint messages=Signal::derive(move || messages(name))>{control}</Field> }
    };
    // A yes/no choice: a select rather than a checkbox, whose unchecked state a plain form post
    // would not send at all.
    let choice = move |name: &'static str,
                       label: &'static str,
                       hint: &'static str,
                       get: fn(&OnboardForm) -> String,
                       set: fn(&mut OnboardForm, String)| {
        let on_change = move |ev: leptos::ev::Event| {
            touched.set(true);
            form.update(|f| set(f, event_target_value(&ev)));
        };
        let selected = move |value: &'static str| move || get(&form.read()) == value;
        view! {
            <Field name label hint messages=Signal::derive(move || messages(name))>
                <select id=name name=format!("form[{name}]") class="w-full rounded border border-slate-300 px-2 py-1" on:change=on_change>
                    <option value="true" selected=selected("true")>"Yes (safer)"</option>
                    <option value="false" selected=selected("false")>"No"</option>
                </select>
            </Field>
        }
    };
    let field = move |name, label, hint, get, set| input(name, label, hint, false, get, set);
    let area = move |name, label, hint, get, set| input(name, label, hint, true, get, set);
    view! {
        <h1 class="text-2xl font-semibold">"Onboard a service"</h1>
        <p class="mt-1 text-sm text-slate-600">"Every field is checked as you type; a platform admin approves the request before anything is created."</p>
        <ActionForm action=submit attr:id="onboard-form" attr:data-hydrated=move || hydrated.get().to_string() attr:class="mt-6 grid gap-4 md:grid-cols-2">
            {field("service", "Service name", "A DNS label, e.g. cart.", |f| f.service.clone(), |f, v| f.service = v)}
            {field("team", "Team", "The owning team.", |f| f.team.clone(), |f, v| f.team = v)}
            {field("namespace", "Namespace", "One of the namespaces the platform allows.", |f| f.namespace.clone(), |f, v| f.namespace = v)}
            {field("image", "Image", "registry/repository:tag or …@sha256:…", |f| f.image.clone(), |f, v| f.image = v)}
            {field("replicas", "Replicas", "1 to 50.", |f| f.replicas.clone(), |f, v| f.replicas = v)}
            {field("rotation_days", "Rotation period (days)", "When secrets count as due for rotation.", |f| f.rotation_days.clone(), |f, v| f.rotation_days = v)}
            <div class="md:col-span-2">
                {area("justification", "Justification", "Why the service joins the mesh; the approving admin reads it.", |f| f.justification.clone(), |f, v| f.justification = v)}
            </div>
            {area("ports", "Ports", "One a line: name number protocol (http, grpc, tcp), then optionally the port's own callers.", |f| f.ports.clone(), |f, v| f.ports = v)}
            {area("callers", "Allowed callers", "Service accounts: name, or namespace/name; for every port without callers of its own.", |f| f.callers.clone(), |f, v| f.callers = v)}
            {area("env", "Environment", "One a line: NAME=value (no secrets here).", |f| f.env.clone(), |f, v| f.env = v)}
            <div class="grid grid-cols-2 gap-2">
                {field("cpu_request", "CPU request", "", |f| f.cpu_request.clone(), |f, v| f.cpu_request = v)}
                {field("memory_request", "Memory request", "", |f| f.memory_request.clone(), |f, v| f.memory_request = v)}
                {field("cpu_limit", "CPU limit", "", |f| f.cpu_limit.clone(), |f, v| f.cpu_limit = v)}
                {field("memory_limit", "Memory limit", "", |f| f.memory_limit.clone(), |f, v| f.memory_limit = v)}
            </div>
            {field("certificate_ttl_hours", "Vault certificate (hours)", "Empty for none.", |f| f.certificate_ttl_hours.clone(), |f, v| f.certificate_ttl_hours = v)}
            {field("health_check_path", "Health-check path", "HTTP path for readiness and liveness probes, e.g. /healthz; empty for none.", |f| f.health_check_path.clone(), |f, v| f.health_check_path = v)}
            <div class="grid grid-cols-2 gap-2">
                {choice("run_as_non_root", "Run as non-root", "The image must not need root.", |f| f.run_as_non_root.clone(), |f, v| f.run_as_non_root = v)}
                {choice("read_only_root_filesystem", "Read-only root file system", "/tmp stays writable.", |f| f.read_only_root_filesystem.clone(), |f, v| f.read_only_root_filesystem = v)}
            </div>
            <fieldset class="md:col-span-2 rounded border border-slate-200 p-3">
                <legend class="px-1 text-sm font-medium">"Secrets"</legend>
                <p class="text-xs text-slate-600">"Typed values go to Vault only; they are never stored or shown by meshport. Leave a name empty to skip a row."</p>
                {(0..SECRET_ROWS).map(|i| {
                    // The validator counts named rows only.
                    let row_messages = Signal::derive(move || {
                        let named = {
                            let f = form.read();
                            (!f.secrets[i].name.trim().is_empty())
                                .then(|| f.secrets[..i].iter().filter(|r| !r.name.trim().is_empty()).count())
                        };
                        named.map(|n| messages(&format!("secrets[{n}]"))).unwrap_or_default()
                    });
                    secret_row(form, touched, i, row_messages)
                }).collect_view()}
            </fieldset>
            <div class="md:col-span-2 flex items-center gap-3">
                <button type="submit" id="submit" class="rounded-md bg-indigo-600 px-3 py-2 text-sm font-medium text-white hover:bg-indigo-700 focus:outline-none focus:ring-2 focus:ring-indigo-500">"Submit for approval"</button>
                <button type="button" id="preview" class="rounded-md border border-slate-300 px-3 py-2 text-sm hover:bg-slate-100"
                    on:click=move |_| { preview.dispatch(PreviewForm { form: form.get() }); }>"Preview"</button>
                <p role="alert" id="submit-error" class="text-sm text-red-700">{other_error}</p>
            </div>
        </ActionForm>
        <Preview preview />
    }
}

/// Whether `error` is about `field` (or an element of it: `ports[1].number` is about `ports`).
fn belongs(error: &FieldError, field: &str) -> bool {
    let field = if field == "callers" { "allowed_callers" } else { field };
    error.field == field
        || error
            .field
            .strip_prefix(field)
            .is_some_and(|rest| rest.starts_with('[') || rest.starts_with('.'))
}

/// A labelled field with its hint and errors, linked for screen readers.
#[component]
fn Field(
    name: &'static str,
    label: &'static str,
    hint: &'static str,
    messages: Signal<Vec<String>>,
    children: Children,
) -> impl IntoView {
    view! {
        <div>
            <label for=name class="block text-sm font-medium">{label}</label>
            {children()}
            <p class="text-xs text-slate-500">{hint}</p>
            <ul id=format!("{name}-errors") data-errors-for=name class="text-sm text-red-700" aria-live="polite">
                {move || messages.get().into_iter().map(|m| view! { <li>{m}</li> }).collect_view()}
            </ul>
        </div>
    }
}

fn secret_row(
    form: RwSignal<OnboardForm>,
    touched: RwSignal<bool>,
    i: usize,
    messages: Signal<Vec<String>>,
) -> impl IntoView {
    let update = move |ev: leptos::ev::Event,
                       set: fn(&mut crate::onboarding::SecretRow, String)| {
        touched.set(true);
        form.update(|f| set(&mut f.secrets[i], event_target_value(&ev)));
    };
    let source = move || form.read().secrets[i].source.clone();
    let name = move |field: &str| format!("form[secrets][{i}][{field}]");
    view! {
        <div class="mt-2 grid gap-2 md:grid-cols-4" data-secret-row=i>
            <input name=name("name") aria-label=format!("Secret {} name", i + 1) placeholder="name, e.g. db_password"
                class="rounded border border-slate-300 px-2 py-1"
                value=move || form.read().secrets[i].name.clone()
                on:input=move |ev| update(ev, |s, v| s.name = v) />
            <select name=name("source") aria-label=format!("Secret {} source", i + 1) class="rounded border border-slate-300 px-2 py-1"
                on:change=move |ev| update(ev, |s, v| s.source = v)>
                <option value="generate" selected=move || source() == "generate">"Generate"</option>
                <option value="provided" selected=move || source() == "provided">"I type the value"</option>
                <option value="existing" selected=move || source() == "existing">"Already in Vault"</option>
            </select>
            <input type="password" autocomplete="new-password" name=name("value") aria-label=format!("Secret {} value", i + 1)
                placeholder="value (when typed)" class="rounded border border-slate-300 px-2 py-1"
                on:input=move |ev| update(ev, |s, v| s.value = v) />
            <div class="flex min-w-0 gap-1">
                <input name=name("length") aria-label=format!("Secret {} length", i + 1) class="w-16 rounded border border-slate-300 px-2 py-1"
                    value=move || form.read().secrets[i].length.clone()
                    on:input=move |ev| update(ev, |s, v| s.length = v) />
                <select name=name("alphabet") aria-label=format!("Secret {} alphabet", i + 1) class="min-w-0 flex-1 rounded border border-slate-300 px-2 py-1"
                    on:change=move |ev| update(ev, |s, v| s.alphabet = v)>
                    {Alphabet::ALL.into_iter().map(|a| view! { <option value=a.as_str()>{a.as_str()}</option> }).collect_view()}
                </select>
            </div>
            <ul class="md:col-span-4 text-sm text-red-700" aria-live="polite">
                {move || messages.get().into_iter().map(|m| view! { <li>{m}</li> }).collect_view()}
            </ul>
        </div>
    }
}

/// The files the request would create, one tab per kind.
#[component]
fn Preview(preview: ServerAction<PreviewForm>) -> impl IntoView {
    let (tab, set_tab) = signal("manifests");
    view! {
        {move || preview.value().get().map(|result| match result {
            Err(error) => view! { <p role="alert" id="preview-error" class="mt-4 text-sm text-red-700">{error.to_string()}</p> }.into_any(),
            Ok(files) => view! {
                <section id="preview-files" aria-label="Preview" class="mt-6">
                    <div role="tablist" class="flex gap-2">
                        {[("manifests", "Manifests"), ("vault", "Vault"), ("diff", "Changes to the repository")].into_iter().map(|(key, label)| view! {
                            <button type="button" role="tab" id=format!("tab-{key}") aria-selected=move || (tab.get() == key).to_string()
                                class="rounded border border-slate-300 px-3 py-1 text-sm aria-selected:bg-indigo-600 aria-selected:text-white"
                                on:click=move |_| set_tab.set(key)>{label}</button>
                        }).collect_view()}
                    </div>
                    <ul id="preview-diff" class="mt-3 text-sm" hidden=move || tab.get() != "diff">
                        {files.iter().filter_map(|f| f.change.clone().map(|change| (f.path.clone(), change))).map(|(path, change)| view! {
                            <li data-change=change.clone()><span class="font-mono">{path}</span>{format!(" — {change}")}</li>
                        }).collect_view()}
                    </ul>
                    {files.into_iter().filter(|f| f.change.as_deref() != Some("removed")).map(|file| {
                        let kind = if file.path.starts_with("vault/") { "vault" } else { "manifests" };
                        view! {
                            <article data-preview-path=file.path.clone() class="mt-3" hidden=move || tab.get() != kind>
                                <h3 class="font-mono text-sm">{file.path.clone()}</h3>
                                <pre class="overflow-x-auto rounded bg-slate-900 p-3 text-xs text-slate-100">{file.contents}</pre>
                            </article>
                        }
                    }).collect_view()}
                </section>
            }.into_any(),
        })}
    }
}
