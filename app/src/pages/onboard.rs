//! `/onboard`: the onboarding form, [`ServiceForm`], which modifying a live service shares.
//!
//! A plain HTML form posted back to its own page, so it works without JavaScript: the server
//! (`POST /onboard`) adds or removes the row whose button was pressed, or submits the request,
//! and shows the form again with what was typed (never a secret value) and the validator's
//! errors ([`PostedForm`]). Once hydrated, rows are added and removed in the browser, every
//! change runs the shared validator and shows each field's errors beside it, "Submit" calls
//! `submit_form`, and "Preview" shows every file the request would create.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::access::AppError;
use crate::onboarding::{
    Alphabet, EnvRow, FieldError, OnboardForm, OnboardingRequest, OnboardingRules, PortRow,
    Protocol, RowEdit, RowGroup, SecretRow, field_name, row_field_name,
};
use crate::request_api::{
    ChangePreview, PreviewChange, PreviewForm, SubmitChange, SubmitForm, form_rules,
};

/// The live service a [`ServiceForm`] changes: its submission proposes a change set, and its
/// preview compares with the live version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveService {
    pub namespace: String,
    pub service: String,
    /// The spec the form opens with (secret values left out): the browser's validator judges
    /// a change against it.
    pub spec: OnboardingRequest,
}

/// The form as the server shows it again after a post without JavaScript (the server provides
/// it as context to the page's render): what was typed, secret values dropped, and why a
/// submission was refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostedForm {
    pub form: OnboardForm,
    /// The validator's errors of a refused submission.
    pub errors: Vec<FieldError>,
    /// Any other reason it was refused (not signed in, another team's service, …).
    pub problem: Option<String>,
}

impl PostedForm {
    /// What a form page shows first: the server's [`PostedForm`] when the page answers a post
    /// without JavaScript (the server provides it as context), else the form of `initial`.
    /// Secret values are never shown: a `provided` secret's row opens with an empty value.
    pub fn shown(initial: &OnboardingRequest) -> Self {
        use_context::<PostedForm>().unwrap_or_else(|| PostedForm {
            form: OnboardForm::from_request(&initial.without_secret_values()),
            ..PostedForm::default()
        })
    }
}

/// The onboarding page.
#[component]
pub fn OnboardPage() -> impl IntoView {
    let rules = Resource::new(|| (), |()| form_rules());
    view! {
        <h1 class="text-2xl font-semibold">"Onboard a service"</h1>
        <p class="mt-1 text-sm text-slate-600">"Every field is checked as you type; a platform admin approves the request before anything is created."</p>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let rules = rules.await.unwrap_or_default();
                view! { <ServiceForm shown=PostedForm::shown(&OnboardingRequest::default()) rules live=None /> }
            })}
        </Suspense>
    }
}

/// The service form, shared by onboarding and modifying a live service: an island, the part
/// of the page that ships to the browser. Its props are serialised into the page, so the
/// browser hydrates the form the server drew.
///
/// `shown` is what the form opens with ([`PostedForm::shown`]), `rules` the validator's
/// settings ([`form_rules`]). The form posts back to the page's own URL, and submits with
/// `submit_form` (a new request); a page at another path needs the server's `POST` handler of
/// `/onboard` on its path too.
///
/// With `live`, the form changes that live service: "Submit" proposes a change set with
/// `submit_change`, the browser runs the validator's rules for a change, and "Preview" shows
/// the differences from the live version.
#[island]
pub fn ServiceForm(
    shown: PostedForm,
    rules: OnboardingRules,
    live: Option<LiveService>,
) -> impl IntoView {
    let live_spec = StoredValue::new(live.as_ref().map(|live| live.spec.clone()));
    let live = StoredValue::new(live);
    let rules = StoredValue::new(rules);
    let form = RwSignal::new(shown.form);
    let posted = StoredValue::new((shown.errors, shown.problem));
    let touched = RwSignal::new(false);
    let submit = ServerAction::<SubmitForm>::new();
    let propose = ServerAction::<SubmitChange>::new();
    let preview = ServerAction::<PreviewForm>::new();
    let preview_change = ServerAction::<PreviewChange>::new();
    // The last submission's answer, whichever kind the form sends.
    let submitted = Signal::derive(move || propose.value().get().or_else(|| submit.value().get()));
    // The browser's judgement, from the same validator the server runs.
    let errors = Memo::new(move |_| {
        rules.with_value(|rules| {
            live_spec.with_value(|live| form.read().errors_against(live.as_ref(), rules))
        })
    });
    // The server's: of the last submission from this page, or of the post it came back from
    // (until the first edit, after which the browser's own judgement is current).
    let server_errors = move || match submitted.get() {
        Some(Err(AppError::InvalidRequest(errors))) => errors.0,
        Some(_) => Vec::new(),
        None if touched.get() => Vec::new(),
        None => posted.with_value(|(errors, _)| errors.clone()),
    };
    // The messages about the field at `path` (`service`, `ports[1]`, …); `exact` leaves out
    // its elements' (`ports` alone: "at most 10 ports").
    let messages = move |path: &str, exact: bool| {
        let mut all = if touched.get() { errors.get() } else { Vec::new() };
        for error in server_errors() {
            if !all.contains(&error) {
                all.push(error);
            }
        }
        all.into_iter()
            .filter(|e| if exact { e.field == path } else { belongs(e, path) })
            .map(|e| e.message)
            .collect::<Vec<_>>()
    };
    let other_error = move || match submitted.get() {
        Some(Err(AppError::InvalidRequest(_))) | Some(Ok(_)) => None,
        Some(Err(error)) => Some(error.to_string()),
        None => posted.with_value(|(_, problem)| problem.clone()),
    };
    // Marks the form once the WASM has hydrated it (the browser tests wait for it).
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    Effect::new(move |_| {
        if let Some(Ok(id)) = submitted.get() {
            // No client-side router in islands mode: the request's page is a page load.
            let _ = window().location().set_href(&format!("/requests/{id}"));
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
                <textarea id=name name=field_name(name) rows="3"
                    class="w-full rounded border border-slate-300 px-2 py-1 font-mono text-sm"
                    on:input=on_input>
                    {get(&form.read_untracked())}
                </textarea>
            }
            .into_any()
        } else {
            view! {
                <input id=name name=field_name(name) type="text"
                    class="w-full rounded border border-slate-300 px-2 py-1"
                    value=move || get(&form.read()) on:input=on_input />
            }
            .into_any()
        };
        let messages = Signal::derive(move || messages(validator_path(name), false));
        view! { <Field name label hint messages>{control}</Field> }
    };
    // A choice among fixed values: a select rather than a checkbox, whose unchecked state a
    // plain form post would not send at all.
    let choice = move |name: &'static str,
                       label: &'static str,
                       hint: &'static str,
                       options: &'static [(&'static str, &'static str)],
                       get: fn(&OnboardForm) -> String,
                       set: fn(&mut OnboardForm, String)| {
        let on_change = move |ev: leptos::ev::Event| {
            touched.set(true);
            form.update(|f| set(f, event_target_value(&ev)));
        };
        let selected = move |value: &'static str| move || get(&form.read()) == value;
        view! {
            <Field name label hint messages=Signal::derive(move || messages(validator_path(name), false))>
                <select id=name name=field_name(name) class="w-full rounded border border-slate-300 px-2 py-1" on:change=on_change>
                    {options.iter().map(|&(value, text)| view! {
                        <option value=value selected=selected(value)>{text}</option>
                    }).collect_view()}
                </select>
            </Field>
        }
    };
    let field = move |name, label, hint, get, set| input(name, label, hint, false, get, set);
    let area = move |name, label, hint, get, set| input(name, label, hint, true, get, set);
    // The messages of row `i` of `group`, by its place among the used rows.
    let row_messages = move |group: RowGroup, i: usize| {
        Signal::derive(move || {
            let path = form.with(|f| f.row_path(group, i));
            path.map(|path| messages(&path, false)).unwrap_or_default()
        })
    };
    let rows = Rows { form, touched };
    let port_row = move |i: usize| {
        let text = move |get: fn(&PortRow) -> String| rows.text(i, |f| &f.ports, get);
        let on = move |set: fn(&mut PortRow, String)| rows.on(i, |f| &mut f.ports, set);
        let name = move |field| row_field_name(RowGroup::Ports, i, field);
        let protocol = text(|r| r.protocol.clone());
        view! {
            <div class="mt-2 flex flex-wrap items-start gap-2" data-row=i>
                <input name=name("name") aria-label=format!("Port {} name", i + 1) placeholder="name, e.g. grpc"
                    class="w-32 rounded border border-slate-300 px-2 py-1" value=text(|r| r.name.clone()) on:input=on(|r, v| r.name = v) />
                <input name=name("number") inputmode="numeric" aria-label=format!("Port {} number", i + 1) placeholder="number"
                    class="w-24 rounded border border-slate-300 px-2 py-1" value=text(|r| r.number.clone()) on:input=on(|r, v| r.number = v) />
                <select name=name("protocol") aria-label=format!("Port {} protocol", i + 1) class="rounded border border-slate-300 px-2 py-1"
                    on:change=on(|r, v| r.protocol = v)>
                    {Protocol::ALL.into_iter().map(|p| view! {
                        <option value=p.as_str() selected=move || protocol() == p.as_str()>{p.as_str()}</option>
                    }).collect_view()}
                </select>
                <input name=name("callers") aria-label=format!("Port {} callers", i + 1) placeholder="its own callers (empty: the service's)"
                    class="min-w-0 flex-1 rounded border border-slate-300 px-2 py-1" value=text(|r| r.callers.clone()) on:input=on(|r, v| r.callers = v) />
                {rows.remove(RowEdit::Remove(RowGroup::Ports, i), format!("Remove port {}", i + 1))}
                <Messages messages=row_messages(RowGroup::Ports, i) />
            </div>
        }
        .into_any()
    };
    let env_row = move |i: usize| {
        let text = move |get: fn(&EnvRow) -> String| rows.text(i, |f| &f.env, get);
        let on = move |set: fn(&mut EnvRow, String)| rows.on(i, |f| &mut f.env, set);
        let name = move |field| row_field_name(RowGroup::Env, i, field);
        view! {
            <div class="mt-2 flex flex-wrap items-start gap-2" data-row=i>
                <input name=name("name") aria-label=format!("Variable {} name", i + 1) placeholder="NAME"
                    class="w-48 rounded border border-slate-300 px-2 py-1 font-mono" value=text(|r| r.name.clone()) on:input=on(|r, v| r.name = v) />
                <input name=name("value") aria-label=format!("Variable {} value", i + 1) placeholder="value"
                    class="min-w-0 flex-1 rounded border border-slate-300 px-2 py-1 font-mono" value=text(|r| r.value.clone()) on:input=on(|r, v| r.value = v) />
                {rows.remove(RowEdit::Remove(RowGroup::Env, i), format!("Remove variable {}", i + 1))}
                <Messages messages=row_messages(RowGroup::Env, i) />
            </div>
        }
        .into_any()
    };
    let secret_row = move |i: usize| {
        let text = move |get: fn(&SecretRow) -> String| rows.text(i, |f| &f.secrets, get);
        let on = move |set: fn(&mut SecretRow, String)| rows.on(i, |f| &mut f.secrets, set);
        let name = move |field| row_field_name(RowGroup::Secrets, i, field);
        let (source, alphabet) = (text(|r| r.source.clone()), text(|r| r.alphabet.clone()));
        let retype =
            move || form.with(|f| f.secrets.get(i).is_some_and(|r| r.retype && r.value.is_empty()));
        view! {
            <div class="mt-2 flex flex-wrap items-start gap-2" data-row=i>
                <input name=name("name") aria-label=format!("Secret {} name", i + 1) placeholder="name, e.g. db_password"
                    class="w-48 rounded border border-slate-300 px-2 py-1" value=text(|r| r.name.clone()) on:input=on(|r, v| r.name = v) />
                <select name=name("source") aria-label=format!("Secret {} source", i + 1) class="rounded border border-slate-300 px-2 py-1"
                    on:change=on(|r, v| r.source = v)>
                    <option value="generate" selected=move || source() == "generate">"Generate"</option>
                    <option value="provided" selected=move || source() == "provided">"I type the value"</option>
                    <option value="existing" selected=move || source() == "existing">"Already in Vault"</option>
                </select>
                // Write-only: a property, so the value never appears in server-rendered HTML.
                <input type="password" autocomplete="new-password" name=name("value") aria-label=format!("Secret {} value", i + 1)
                    placeholder="value (when typed)" class="w-48 rounded border border-slate-300 px-2 py-1"
                    prop:value=text(|r| r.value.clone()) on:input=on(|r, v| r.value = v) />
                <input name=name("length") aria-label=format!("Secret {} length", i + 1) class="w-16 rounded border border-slate-300 px-2 py-1"
                    value=text(|r| r.length.clone()) on:input=on(|r, v| r.length = v) />
                <select name=name("alphabet") aria-label=format!("Secret {} alphabet", i + 1) class="rounded border border-slate-300 px-2 py-1"
                    on:change=on(|r, v| r.alphabet = v)>
                    {Alphabet::ALL.into_iter().map(|a| view! {
                        <option value=a.as_str() selected=move || alphabet() == a.as_str()>{a.as_str()}</option>
                    }).collect_view()}
                </select>
                {rows.remove(RowEdit::Remove(RowGroup::Secrets, i), format!("Remove secret {}", i + 1))}
                <Show when=retype>
                    <p class="w-full text-sm text-amber-700" data-retype=i>"Type the value again: meshport never sends a secret value back to the browser."</p>
                </Show>
                <Messages messages=row_messages(RowGroup::Secrets, i) />
            </div>
        }
        .into_any()
    };
    view! {
        <form id="onboard-form" method="post" data-hydrated=move || hydrated.get().to_string() class="mt-6 grid gap-4 md:grid-cols-2"
            on:submit=move |ev| {
                ev.prevent_default();
                touched.set(true);
                match live.get_value() {
                    Some(LiveService { namespace, service, .. }) => {
                        propose.dispatch(SubmitChange { namespace, service, form: form.get() });
                    }
                    None => {
                        submit.dispatch(SubmitForm { form: form.get() });
                    }
                }
            }>
            // Enter in a text field presses the form's first submit button: "Submit", not a row's
            // "Remove".
            <button type="submit" hidden tabindex="-1" aria-hidden="true"></button>
            <ul id="form-errors" role="alert" class="md:col-span-2 text-sm text-red-700">
                {move || server_errors().into_iter().map(|e| {
                    let (rule, field) = (e.rule.as_str(), e.field.clone());
                    view! {
                        <li data-field=field data-rule=rule>
                            <span class="font-mono">{e.field}</span>" (" {rule} "): " {e.message}
                        </li>
                    }
                }).collect_view()}
            </ul>
            {field("service", "Service name", "A DNS label, e.g. cart.", |f| f.service.clone(), |f, v| f.service = v)}
            {field("team", "Team", "The owning team.", |f| f.team.clone(), |f, v| f.team = v)}
            {field("namespace", "Namespace", "One of the namespaces the platform allows.", |f| f.namespace.clone(), |f, v| f.namespace = v)}
            {field("image", "Image", "registry/repository:tag or …@sha256:…", |f| f.image.clone(), |f, v| f.image = v)}
            {field("replicas", "Replicas", "1 to 50.", |f| f.replicas.clone(), |f, v| f.replicas = v)}
            {field("rotation_days", "Rotation period (days)", "When secrets count as due for rotation.", |f| f.rotation_days.clone(), |f, v| f.rotation_days = v)}
            <div class="md:col-span-2">
                {area("justification", "Justification", "Why the service joins the mesh; the approving admin reads it.", |f| f.justification.clone(), |f, v| f.justification = v)}
            </div>
            {rows.group(RowGroup::Ports, "Ports", "Name, number and protocol of each port the container listens on; a port may name its own callers.", "Add a port", messages, port_row)}
            {area("callers", "Allowed callers", "Service accounts: name, or namespace/name; for every port without callers of its own.", |f| f.callers.clone(), |f, v| f.callers = v)}
            <div class="grid grid-cols-2 gap-2">
                {field("cpu_request", "CPU request", "", |f| f.cpu_request.clone(), |f, v| f.cpu_request = v)}
                {field("memory_request", "Memory request", "", |f| f.memory_request.clone(), |f, v| f.memory_request = v)}
                {field("cpu_limit", "CPU limit", "", |f| f.cpu_limit.clone(), |f, v| f.cpu_limit = v)}
                {field("memory_limit", "Memory limit", "", |f| f.memory_limit.clone(), |f, v| f.memory_limit = v)}
            </div>
            {rows.group(RowGroup::Env, "Environment", "Plain variables only: secrets go below, to Vault.", "Add a variable", messages, env_row)}
            {field("certificate_ttl_hours", "Vault certificate (hours)", "Empty for none.", |f| f.certificate_ttl_hours.clone(), |f, v| f.certificate_ttl_hours = v)}
            {field("health_check_path", "Health-check path", "HTTP path for readiness and liveness probes, e.g. /healthz; empty for none.", |f| f.health_check_path.clone(), |f, v| f.health_check_path = v)}
            <div class="grid grid-cols-2 gap-2">
                {choice("run_as_non_root", "Run as non-root", "The image must not need root.", YES_NO, |f| f.run_as_non_root.clone(), |f, v| f.run_as_non_root = v)}
                {choice("read_only_root_filesystem", "Read-only root file system", "/tmp stays writable.", YES_NO, |f| f.read_only_root_filesystem.clone(), |f, v| f.read_only_root_filesystem = v)}
            </div>
            <div class="md:col-span-2 grid grid-cols-2 gap-2">
                {choice("rotation_policy", "Rotation", "Automatic: meshport renews generated secrets when due, in the maintenance window.", ROTATION_POLICIES, |f| f.rotation_policy.clone(), |f, v| f.rotation_policy = v)}
                {choice("delivery", "Delivery of a new value", "Reload: the agent re-renders and runs your command. Restart: a pull request rolls the pods.", DELIVERIES, |f| f.delivery.clone(), |f, v| f.delivery = v)}
                <div class="col-span-2">
                    {field("reload_command", "Reload command", "Reload only: run by the Vault Agent after a new value is written, e.g. wget -qO- http://127.0.0.1:8080/-/reload", |f| f.reload_command.clone(), |f, v| f.reload_command = v)}
                </div>
            </div>
            {rows.group(RowGroup::Secrets, "Secrets", "Typed values go to Vault only; they are never stored or shown by meshport. A row without a name is skipped.", "Add a secret", messages, secret_row)}
            <div class="md:col-span-2 flex items-center gap-3">
                <button type="submit" id="submit" class="rounded-md bg-indigo-600 px-3 py-2 text-sm font-medium text-white hover:bg-indigo-700 focus:outline-none focus:ring-2 focus:ring-indigo-500">"Submit for approval"</button>
                <button type="button" id="preview" class="rounded-md border border-slate-300 px-3 py-2 text-sm hover:bg-slate-100"
                    on:click=move |_| match live.get_value() {
                        Some(LiveService { namespace, service, .. }) => {
                            preview_change.dispatch(PreviewChange { namespace, service, form: form.get() });
                        }
                        None => {
                            preview.dispatch(PreviewForm { form: form.get() });
                        }
                    }>"Preview"</button>
                <p role="alert" id="submit-error" class="text-sm text-red-700">{other_error}</p>
            </div>
        </form>
        <Preview preview />
        <ChangePreviewView preview=preview_change />
    }
}

/// What a change would do to the live service: its spec differences, the files that differ
/// from the live rendering (and how the repository's copy compares), the Vault objects.
#[component]
fn ChangePreviewView(preview: ServerAction<PreviewChange>) -> impl IntoView {
    let shown = move |result: Result<ChangePreview, AppError>| {
        match result {
        Err(error) => view! { <p role="alert" id="preview-error" class="mt-4 text-sm text-red-700">{error.to_string()}</p> }.into_any(),
        Ok(change) => view! {
            <section id="change-preview" aria-label="Changes to the live version" class="mt-6 space-y-4 text-sm">
                <div>
                    <h2 class="font-medium">"Spec"</h2>
                    <ul id="preview-differences" class="mt-1">
                        {change.differences.into_iter().map(|d| {
                            let field = d.field.clone();
                            view! {
                                <li data-field=field class="font-mono text-xs">
                                    {format!("{}: {} → {}", d.field, d.from.unwrap_or_else(|| "—".into()), d.to.unwrap_or_else(|| "—".into()))}
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                </div>
                <div>
                    <h2 class="font-medium">"Files (against the live version; the repository's copy in brackets)"</h2>
                    <ul id="preview-changed-files" class="mt-1">
                        {change.files.into_iter().map(super::requests::changed_file).collect_view()}
                    </ul>
                </div>
                <div>
                    <h2 class="font-medium">"Vault (against what Vault holds now)"</h2>
                    <ul id="preview-vault" class="mt-1">
                        {change.vault.into_iter().map(|v| view! {
                            <li data-change=v.change.clone() class="font-mono text-xs">{format!("{}: {}", v.change, v.path)}</li>
                        }).collect_view()}
                    </ul>
                </div>
            </section>
        }.into_any(),
    }
    };
    view! { {move || preview.value().get().map(shown)} }
}

/// The options of a yes/no choice.
const YES_NO: &[(&str, &str)] = &[("true", "Yes (safer)"), ("false", "No")];
/// The rotation policies, as [`crate::onboarding::RotationPolicy::as_str`] names them.
const ROTATION_POLICIES: &[(&str, &str)] =
    &[("manual", "Manual: rotated when someone asks"), ("automatic", "Automatic when due")];
/// The deliveries, as [`crate::onboarding::Delivery::as_str`] names them.
const DELIVERIES: &[(&str, &str)] = &[
    ("none", "None: the agent re-renders (about 5 min)"),
    ("reload", "Reload: re-render and run a command"),
    ("restart", "Restart: roll the pods by pull request"),
];

/// The validator's path of a field of the form.
fn validator_path(name: &str) -> &str {
    match name {
        "callers" => "allowed_callers",
        "cpu_request" => "resources.cpu_request",
        "memory_request" => "resources.memory_request",
        "cpu_limit" => "resources.cpu_limit",
        "memory_limit" => "resources.memory_limit",
        "certificate_ttl_hours" => "certificate.ttl_hours",
        "rotation_policy" => "rotation.policy",
        "delivery" => "rotation.delivery",
        "reload_command" => "rotation.reload_command",
        other => other,
    }
}

/// Whether `error` is about the field at `path` (or an element of it: `ports[1].number` is
/// about `ports[1]` and `ports`).
fn belongs(error: &FieldError, path: &str) -> bool {
    error.field == path
        || error
            .field
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('[') || rest.starts_with('.'))
}

/// The rows of the form's repeated parts: reading and writing a row's fields, and the buttons
/// that add and remove rows. The buttons submit the form, which is what they do without
/// JavaScript (the server edits the rows); hydrated, they edit the rows in place instead.
#[derive(Clone, Copy)]
struct Rows {
    form: RwSignal<OnboardForm>,
    touched: RwSignal<bool>,
}

impl Rows {
    /// A field of row `i` (empty once the row is gone: a removed row's inputs may read once
    /// more before they are dropped).
    fn text<R: 'static>(
        self,
        i: usize,
        list: fn(&OnboardForm) -> &Vec<R>,
        get: fn(&R) -> String,
    ) -> impl Fn() -> String + Copy + Send + Sync + 'static {
        let form = self.form;
        move || form.with(|f| list(f).get(i).map(get).unwrap_or_default())
    }

    /// Writes an input's value to a field of row `i`.
    fn on<R: 'static>(
        self,
        i: usize,
        list: fn(&mut OnboardForm) -> &mut Vec<R>,
        set: fn(&mut R, String),
    ) -> impl Fn(leptos::ev::Event) + Copy + 'static {
        let Self { form, touched } = self;
        move |ev| {
            touched.set(true);
            form.update(|f| {
                if let Some(row) = list(f).get_mut(i) {
                    set(row, event_target_value(&ev));
                }
            });
        }
    }

    fn button(self, edit: RowEdit, label: String, text: &'static str) -> impl IntoView {
        let form = self.form;
        view! {
            <button type="submit" name="row" value=edit.value() aria-label=label
                class="rounded-md border border-slate-300 px-2 py-1 text-sm hover:bg-slate-100"
                on:click=move |ev| {
                    ev.prevent_default();
                    form.update(|f| f.edit(edit));
                }>{text}</button>
        }
    }

    fn remove(self, edit: RowEdit, label: String) -> impl IntoView {
        self.button(edit, label, "Remove")
    }

    /// A group of rows drawn by `row`, with its own messages ("at most 10 ports") and its
    /// "add" button.
    fn group(
        self,
        group: RowGroup,
        legend: &'static str,
        hint: &'static str,
        add: &'static str,
        messages: impl Fn(&str, bool) -> Vec<String> + Copy + Send + Sync + 'static,
        row: impl Fn(usize) -> AnyView + Copy + Send + Sync + 'static,
    ) -> impl IntoView {
        let form = self.form;
        // Only a change in the number of rows draws them again, not every keystroke.
        let count = Memo::new(move |_| form.with(|f| f.rows(group)));
        let name = group.as_str();
        view! {
            <fieldset id=name data-rows=name class="md:col-span-2 rounded border border-slate-200 p-3">
                <legend class="px-1 text-sm font-medium">{legend}</legend>
                <p class="text-xs text-slate-500">{hint}</p>
                {move || (0..count.get()).map(row).collect_view()}
                <Messages messages=Signal::derive(move || messages(name, true)) />
                <div class="mt-2">{self.button(RowEdit::Add(group), add.to_owned(), add)}</div>
            </fieldset>
        }
    }
}

/// A list of error messages, announced as they change.
#[component]
fn Messages(messages: Signal<Vec<String>>) -> impl IntoView {
    view! {
        <ul class="w-full text-sm text-red-700" aria-live="polite">
            {move || messages.get().into_iter().map(|m| view! { <li>{m}</li> }).collect_view()}
        </ul>
    }
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
