//! The one validator of onboarding requests. The browser runs it on every keystroke; the server
//! runs it again on submit, and only a [`ValidRequest`] reaches the renderers, so nothing that
//! fails a rule here can end up in a manifest, a Vault policy or a path.
//!
//! Messages name the field, the rule and what to do, and never repeat a secret value.

use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use super::quantity::{cpu_millis, memory_bytes};
use super::reference::ImageReference;
use super::request::{
    Delivery, OnboardingRequest, OnboardingRules, Protocol, RotationPolicy, SecretSource,
};

/// Service names that belong to the platform itself.
pub const RESERVED_SERVICE_NAMES: [&str; 14] = [
    "kubernetes",
    "default",
    "linkerd",
    "vault",
    "openbao",
    "cert-manager",
    "trust-manager",
    "argocd",
    "meshport",
    "kube-dns",
    "coredns",
    "metrics-server",
    "prometheus",
    "grafana",
];

/// Name prefixes that belong to platform components (`kube-proxy`, `linkerd-identity`, …).
pub const RESERVED_SERVICE_PREFIXES: [&str; 5] =
    ["kube-", "linkerd-", "vault-", "openbao-", "argocd-"];

/// Ports the Linkerd proxy itself listens on inside every meshed pod.
pub const LINKERD_PROXY_PORTS: [u32; 6] = [4140, 4143, 4190, 4191, 4567, 4568];

/// The longest secret name: `agent-inject-template-<name>` must fit a 63-character annotation
/// name.
pub const MAX_SECRET_NAME: usize = 63 - "agent-inject-template-".len();

/// The variable naming the file with the Vault-issued certificate, key and chain.
pub const CERTIFICATE_FILE_ENV: &str = "TLS_PEM_FILE";

/// Limits on list sizes, so one request stays reviewable.
pub const MAX_PORTS: usize = 10;
/// See [`MAX_PORTS`].
pub const MAX_ENV: usize = 50;
/// See [`MAX_PORTS`].
pub const MAX_SECRETS: usize = 20;
/// See [`MAX_PORTS`].
pub const MAX_CALLERS: usize = 50;
/// Longest justification, in characters.
pub const MAX_JUSTIFICATION: usize = 2000;
/// Longest health-check path, in characters.
pub const MAX_HEALTH_CHECK_PATH: usize = 200;
/// Longest plain environment value, in bytes.
pub const MAX_ENV_VALUE: usize = 4096;
/// Longest user-provided secret, in bytes.
pub const MAX_SECRET_VALUE: usize = 64 * 1024;

/// Words that mark an environment variable as a secret, which must go through Vault instead.
const SECRET_LIKE_ENV_WORDS: [&str; 6] =
    ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "PRIVATE_KEY"];

/// Which rule a field broke; stable names for the API and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Rule {
    /// The field is empty but must be given.
    Required,
    /// The value is longer than allowed.
    TooLong,
    /// The value does not have the required shape (characters, syntax).
    Format,
    /// The value is a name the platform keeps for itself.
    Reserved,
    /// The value is well-formed but not allowed by the platform's settings.
    NotAllowed,
    /// A number outside its range, or a list with too many entries.
    OutOfRange,
    /// The same name or number appears twice.
    Duplicate,
    /// Two fields contradict each other.
    Conflict,
}

impl Rule {
    /// The stable name of the rule.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::TooLong => "too_long",
            Self::Format => "format",
            Self::Reserved => "reserved",
            Self::NotAllowed => "not_allowed",
            Self::OutOfRange => "out_of_range",
            Self::Duplicate => "duplicate",
            Self::Conflict => "conflict",
        }
    }
}

/// One broken rule: which field, which rule, and a message a person understands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// Path of the field, for example `service` or `ports[1].number`.
    pub field: String,
    /// The rule it broke.
    pub rule: Rule,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every broken rule of a request, in form order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// The errors of one field.
    pub fn for_field<'a>(&'a self, field: &'a str) -> impl Iterator<Item = &'a FieldError> {
        self.0.iter().filter(move |error| error.field == field)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let messages: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "the onboarding request is not valid: {}", messages.join("; "))
    }
}

impl std::error::Error for ValidationErrors {}

/// An [`OnboardingRequest`] that passed [`check`]; the only input the renderers accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidRequest(OnboardingRequest);

impl ValidRequest {
    /// Validates `request` against `rules`.
    pub fn new(
        request: OnboardingRequest,
        rules: &OnboardingRules,
    ) -> Result<Self, ValidationErrors> {
        let errors = check(&request, rules);
        if errors.is_empty() { Ok(Self(request)) } else { Err(ValidationErrors(errors)) }
    }

    /// Validates a request read back from storage, where provided secret values were removed
    /// ([`OnboardingRequest::without_secret_values`]): their absence is not an error, anything
    /// else is (for example a namespace the rules no longer allow).
    pub fn from_stored(
        request: OnboardingRequest,
        rules: &OnboardingRules,
    ) -> Result<Self, ValidationErrors> {
        let errors: Vec<FieldError> = check(&request, rules)
            .into_iter()
            .filter(|e| !(e.rule == Rule::Required && e.field.ends_with(".source.value")))
            .collect();
        if errors.is_empty() { Ok(Self(request)) } else { Err(ValidationErrors(errors)) }
    }

    /// Validates a proposed change of a live service whose spec is `live` (stored, without
    /// secret values): the same rules as a new request, except that a provided secret the live
    /// service already has keeps its value (none is typed; rotation replaces values), and the
    /// service's identity (namespace, name, team) stays. Something besides the justification
    /// must change.
    pub fn change_of(
        request: OnboardingRequest,
        live: &OnboardingRequest,
        rules: &OnboardingRules,
    ) -> Result<Self, ValidationErrors> {
        // Any live secret of that name holds a value already, whatever its source.
        let has_value = |name: &str| live.secrets.iter().any(|s| s.name == name);
        let mut errors: Vec<FieldError> = check(&request, rules)
            .into_iter()
            .filter(|e| {
                !(e.rule == Rule::Required
                    && e.field.ends_with(".source.value")
                    && secret_index(&e.field)
                        .and_then(|i| request.secrets.get(i))
                        .is_some_and(|s| has_value(&s.name)))
            })
            .collect();
        let mut checker = Checker::default();
        for (field, proposed, current) in [
            ("namespace", &request.namespace, &live.namespace),
            ("service", &request.service, &live.service),
            ("team", &request.team, &live.team),
        ] {
            if proposed != current {
                checker.push(
                    field,
                    Rule::Conflict,
                    format!("A live service keeps its {field} (`{current}`); onboard a new service instead."),
                );
            }
        }
        for (i, secret) in request.secrets.iter().enumerate() {
            let typed =
                matches!(&secret.source, SecretSource::Provided { value } if !value.is_empty());
            if typed && has_value(&secret.name) {
                checker.push(
                    format!("secrets[{i}].source.value"),
                    Rule::Conflict,
                    "This secret already holds a value: leave it empty to keep it, or rotate it from the service's status page.",
                );
            }
        }
        let unchanged = OnboardingRequest {
            justification: live.justification.clone(),
            ..request.without_secret_values()
        } == *live;
        if unchanged {
            checker.push(
                "spec",
                Rule::Conflict,
                "Nothing differs from the live version: change something first.",
            );
        }
        errors.extend(checker.errors);
        if errors.is_empty() { Ok(Self(request)) } else { Err(ValidationErrors(errors)) }
    }

    /// The request.
    pub fn into_inner(self) -> OnboardingRequest {
        self.0
    }
}

impl Deref for ValidRequest {
    type Target = OnboardingRequest;

    fn deref(&self) -> &OnboardingRequest {
        &self.0
    }
}

/// Checks every rule and returns the broken ones (empty when the request is valid).
/// `3` of `secrets[3].source.value`.
fn secret_index(field: &str) -> Option<usize> {
    field.strip_prefix("secrets[")?.split(']').next()?.parse().ok()
}

pub fn check(request: &OnboardingRequest, rules: &OnboardingRules) -> Vec<FieldError> {
    let mut v = Checker::default();
    v.service(request);
    v.namespace(&request.namespace, rules);
    v.team(&request.team);
    v.justification(&request.justification);
    v.image(&request.image, rules);
    v.range("replicas", request.replicas, 1, 50, "pod replicas");
    v.ports(request);
    v.resources(request);
    v.secrets(request);
    v.env(request);
    v.callers(request);
    if let Some(certificate) = &request.certificate {
        v.range(
            "certificate.ttl_hours",
            certificate.ttl_hours,
            1,
            2160,
            "hours of certificate lifetime",
        );
    }
    v.range("rotation_days", request.rotation_days, 1, 365, "days between rotations");
    v.health_check(request);
    v.rotation(request);
    v.errors
}

/// Longest reload command the agent runs.
pub const MAX_RELOAD_COMMAND: usize = 500;

/// Collects errors while the rules run.
#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn push(&mut self, field: impl Into<String>, rule: Rule, message: impl Into<String>) {
        self.errors.push(FieldError { field: field.into(), rule, message: message.into() });
    }

    fn service(&mut self, request: &OnboardingRequest) {
        let name = request.service.as_str();
        if !self.dns_label("service", name, "The service name", true) {
            return;
        }
        if RESERVED_SERVICE_NAMES.contains(&name) {
            self.push(
                "service",
                Rule::Reserved,
                format!("`{name}` is reserved for the platform; choose another name."),
            );
        } else if let Some(prefix) =
            RESERVED_SERVICE_PREFIXES.iter().find(|p| name.starts_with(**p))
        {
            self.push(
                "service",
                Rule::Reserved,
                format!("Names starting with `{prefix}` are reserved for platform components; choose another name."),
            );
        }
    }

    fn namespace(&mut self, namespace: &str, rules: &OnboardingRules) {
        if namespace.is_empty() {
            self.push("namespace", Rule::Required, "Choose the namespace the service runs in.");
        } else if !rules.namespaces.iter().any(|allowed| allowed == namespace) {
            self.push(
                "namespace",
                Rule::NotAllowed,
                format!("Services can only be onboarded into: {}.", rules.namespaces.join(", ")),
            );
        }
    }

    fn team(&mut self, team: &str) {
        self.dns_label("team", team, "The team name", false);
    }

    fn justification(&mut self, text: &str) {
        if text.trim().is_empty() {
            self.push(
                "justification",
                Rule::Required,
                "Say why the service needs to join the mesh; the approving admin reads it.",
            );
        } else if text.chars().count() > MAX_JUSTIFICATION {
            self.push(
                "justification",
                Rule::TooLong,
                format!("Keep the justification under {MAX_JUSTIFICATION} characters."),
            );
        } else if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
            self.push(
                "justification",
                Rule::Format,
                "The justification contains control characters; use plain text.",
            );
        }
    }

    fn image(&mut self, image: &str, rules: &OnboardingRules) {
        if image.is_empty() {
            self.push(
                "image",
                Rule::Required,
                "Give the container image, for example `ghcr.io/shop/cart:1.4.2`.",
            );
            return;
        }
        match ImageReference::parse(image) {
            Err(problem) => self.push("image", Rule::Format, format!("Not an OCI image reference: {problem}.")),
            Ok(reference) if !rules.allow_latest_tag && reference.is_latest() => self.push(
                "image",
                Rule::NotAllowed,
                "Pin the image to a version tag or a digest; `latest` (or no tag) is not allowed here.",
            ),
            Ok(_) => {}
        }
    }

    fn ports(&mut self, request: &OnboardingRequest) {
        if request.ports.len() > MAX_PORTS {
            self.push("ports", Rule::OutOfRange, format!("At most {MAX_PORTS} ports."));
        }
        let (mut names, mut numbers) = (HashSet::new(), HashSet::new());
        for (i, port) in request.ports.iter().enumerate() {
            let field = format!("ports[{i}].name");
            if port.name.is_empty() {
                self.push(field, Rule::Required, "Name the port, for example `http` or `grpc`.");
            } else if port.name.len() > 15 {
                self.push(field, Rule::TooLong, "Port names have at most 15 characters.");
            } else if !is_port_name(&port.name) {
                self.push(
                    field,
                    Rule::Format,
                    "Use lowercase letters, digits and single '-' (not first or last), with at least one letter.",
                );
            } else if !names.insert(port.name.as_str()) {
                self.push(field, Rule::Duplicate, "Another port already has this name.");
            }
            let field = format!("ports[{i}].number");
            if !(1..=65535).contains(&port.number) {
                self.push(field, Rule::OutOfRange, "Port numbers run from 1 to 65535.");
            } else if LINKERD_PROXY_PORTS.contains(&port.number) {
                self.push(
                    field,
                    Rule::Reserved,
                    format!(
                        "Port {} is used by the Linkerd proxy in every meshed pod; choose another.",
                        port.number
                    ),
                );
            } else if !numbers.insert(port.number) {
                self.push(field, Rule::Duplicate, "Another port already has this number.");
            }
        }
    }

    fn resources(&mut self, request: &OnboardingRequest) {
        let r = &request.resources;
        let cpu =
            self.quantity("resources.cpu_request", &r.cpu_request, true, cpu_millis, CPU_HINT);
        let cpu_limit =
            self.quantity("resources.cpu_limit", &r.cpu_limit, false, cpu_millis, CPU_HINT);
        let memory = self.quantity(
            "resources.memory_request",
            &r.memory_request,
            true,
            memory_bytes,
            MEMORY_HINT,
        );
        let memory_limit = self.quantity(
            "resources.memory_limit",
            &r.memory_limit,
            false,
            memory_bytes,
            MEMORY_HINT,
        );
        if let (Some(request), Some(limit)) = (cpu, cpu_limit)
            && limit < request
        {
            self.push(
                "resources.cpu_limit",
                Rule::Conflict,
                "The CPU limit must be at least the CPU request.",
            );
        }
        if let (Some(request), Some(limit)) = (memory, memory_limit)
            && limit < request
        {
            self.push(
                "resources.memory_limit",
                Rule::Conflict,
                "The memory limit must be at least the memory request.",
            );
        }
    }

    fn quantity(
        &mut self,
        field: &str,
        value: &str,
        required: bool,
        parse: fn(&str) -> Option<u128>,
        hint: &str,
    ) -> Option<u128> {
        if value.is_empty() {
            if required {
                self.push(field, Rule::Required, format!("Give a value, {hint}."));
            }
            return None;
        }
        match parse(value) {
            Some(0) => {
                self.push(field, Rule::OutOfRange, "Must be more than zero.");
                None
            }
            Some(amount) => Some(amount),
            None => {
                self.push(field, Rule::Format, format!("Not a quantity: write it {hint}."));
                None
            }
        }
    }

    fn secrets(&mut self, request: &OnboardingRequest) {
        if request.secrets.len() > MAX_SECRETS {
            self.push("secrets", Rule::OutOfRange, format!("At most {MAX_SECRETS} secrets."));
        }
        let mut names = HashSet::new();
        for (i, secret) in request.secrets.iter().enumerate() {
            let field = format!("secrets[{i}].name");
            if secret.name.is_empty() {
                self.push(field, Rule::Required, "Name the secret, for example `db_password`.");
            } else if secret.name.len() > MAX_SECRET_NAME {
                self.push(
                    field,
                    Rule::TooLong,
                    format!("Secret names have at most {MAX_SECRET_NAME} characters."),
                );
            } else if !is_secret_name(&secret.name) {
                self.push(
                    field,
                    Rule::Format,
                    "Start with a lowercase letter; then use lowercase letters, digits and '_'.",
                );
            } else if !names.insert(secret.name.as_str()) {
                self.push(field, Rule::Duplicate, "Another secret already has this name.");
            } else if request.certificate.is_some()
                && secret_file_env(&secret.name) == CERTIFICATE_FILE_ENV
            {
                self.push(
                    field,
                    Rule::Conflict,
                    "This name is taken by the certificate's file; rename the secret.",
                );
            }
            match &secret.source {
                SecretSource::Generate { length, .. } => {
                    self.range(
                        &format!("secrets[{i}].source.length"),
                        *length,
                        16,
                        128,
                        "characters",
                    );
                }
                SecretSource::Provided { value } => {
                    let field = format!("secrets[{i}].source.value");
                    // Never quote the value: these messages are shown and may be logged.
                    if value.is_empty() {
                        self.push(
                            field,
                            Rule::Required,
                            "Type the secret's value, or choose to generate it.",
                        );
                    } else if value.expose().len() > MAX_SECRET_VALUE {
                        self.push(field, Rule::TooLong, "Secret values are limited to 64 KiB.");
                    }
                }
                SecretSource::Existing => {}
            }
        }
    }

    fn env(&mut self, request: &OnboardingRequest) {
        if request.env.len() > MAX_ENV {
            self.push("env", Rule::OutOfRange, format!("At most {MAX_ENV} environment variables."));
        }
        let mut secret_files: HashSet<String> =
            request.secrets.iter().map(|s| secret_file_env(&s.name)).collect();
        if request.certificate.is_some() {
            secret_files.insert(CERTIFICATE_FILE_ENV.to_owned());
        }
        let mut names = HashSet::new();
        for (i, var) in request.env.iter().enumerate() {
            let field = format!("env[{i}].name");
            let upper = var.name.to_ascii_uppercase();
            if var.name.is_empty() {
                self.push(field, Rule::Required, "Name the variable.");
            } else if var.name.len() > 128 {
                self.push(field, Rule::TooLong, "Variable names have at most 128 characters.");
            } else if !is_env_name(&var.name) {
                self.push(
                    field,
                    Rule::Format,
                    "Use letters, digits and '_', not starting with a digit.",
                );
            } else if secret_files.contains(&var.name) {
                self.push(
                    field,
                    Rule::Conflict,
                    "meshport sets this variable to the secret's file path; rename it.",
                );
            } else if SECRET_LIKE_ENV_WORDS.iter().any(|word| upper.contains(word)) {
                self.push(
                    field,
                    Rule::NotAllowed,
                    "This looks like a secret; add it under secrets so it is kept in Vault, not in git.",
                );
            } else if !names.insert(var.name.as_str()) {
                self.push(field, Rule::Duplicate, "Another variable already has this name.");
            }
            let field = format!("env[{i}].value");
            if var.value.len() > MAX_ENV_VALUE {
                self.push(
                    field,
                    Rule::TooLong,
                    format!("Values have at most {MAX_ENV_VALUE} bytes."),
                );
            } else if var.value.chars().any(char::is_control) {
                self.push(
                    field,
                    Rule::Format,
                    "Values cannot contain control characters such as newlines.",
                );
            }
        }
    }

    fn callers(&mut self, request: &OnboardingRequest) {
        self.caller_list("allowed_callers", &request.allowed_callers, &request.namespace);
        let inheriting = request.ports.iter().any(|port| port.allowed_callers.is_none());
        if request.allowed_callers.is_empty() && inheriting {
            self.push(
                "allowed_callers",
                Rule::Required,
                "Name at least one caller: Linkerd denies every request to a port no policy allows.",
            );
        }
        for (i, port) in request.ports.iter().enumerate() {
            let Some(callers) = &port.allowed_callers else { continue };
            let field = format!("ports[{i}].allowed_callers");
            if callers.is_empty() {
                self.push(
                    field.clone(),
                    Rule::Required,
                    "Name at least one caller of this port, or leave it to the service's callers.",
                );
            }
            self.caller_list(&field, callers, &request.namespace);
        }
    }

    /// One list of callers: at most [`MAX_CALLERS`] well-formed, distinct service accounts.
    fn caller_list(&mut self, field: &str, callers: &[String], own_namespace: &str) {
        if callers.len() > MAX_CALLERS {
            self.push(field, Rule::OutOfRange, format!("At most {MAX_CALLERS} callers."));
        }
        let mut seen = HashSet::new();
        for (i, caller) in callers.iter().enumerate() {
            let field = format!("{field}[{i}]");
            let (namespace, name) = match caller.split_once('/') {
                Some((namespace, name)) => (namespace, name),
                None => (own_namespace, caller.as_str()),
            };
            let well_formed = is_dns_label(namespace)
                && namespace.len() <= 63
                && is_dns_label(name)
                && name.len() <= 63;
            if caller.is_empty() {
                self.push(field, Rule::Required, "Name the calling service, or remove the entry.");
            } else if !well_formed {
                self.push(
                    field,
                    Rule::Format,
                    "Write a service account as `name` (same namespace) or `namespace/name`, each a lowercase DNS label.",
                );
            } else if !seen.insert((namespace, name)) {
                self.push(field, Rule::Duplicate, "This caller is already listed.");
            }
        }
    }

    /// The rotation plan: a reload command only with `reload` delivery, one line of plain
    /// text; automatic rotation and delivery only where there is something to rotate.
    fn rotation(&mut self, request: &OnboardingRequest) {
        let plan = &request.rotation;
        let generated =
            request.secrets.iter().any(|s| matches!(s.source, SecretSource::Generate { .. }));
        if plan.policy == RotationPolicy::Automatic && !generated {
            self.push(
                "rotation.policy",
                Rule::Conflict,
                "Automatic rotation renews generated secrets, and this service has none: choose manual, or add a generated secret.",
            );
        }
        let delivered = !request.secrets.is_empty() || request.certificate.is_some();
        if plan.delivery != Delivery::None && !delivered {
            self.push(
                "rotation.delivery",
                Rule::Conflict,
                "There is no secret or certificate to deliver: choose none, or add a secret.",
            );
        }
        let Some(command) = &plan.reload_command else { return };
        let field = "rotation.reload_command";
        if plan.delivery != Delivery::Reload {
            self.push(
                field,
                Rule::Conflict,
                "The agent runs a command only with `reload` delivery: choose reload, or leave the command empty.",
            );
        } else if command.trim().is_empty() {
            self.push(field, Rule::Required, "Write the command, or leave the field out.");
        } else if command.chars().count() > MAX_RELOAD_COMMAND {
            self.push(
                field,
                Rule::TooLong,
                format!("Keep the reload command under {MAX_RELOAD_COMMAND} characters."),
            );
        } else if command.chars().any(char::is_control) {
            self.push(
                field,
                Rule::Format,
                "Write the reload command on one line, without control characters.",
            );
        }
    }

    /// The probes' path: an absolute URL path of plain characters, on an HTTP port.
    fn health_check(&mut self, request: &OnboardingRequest) {
        let Some(path) = &request.health_check_path else { return };
        let field = "health_check_path";
        let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~/%".contains(&b);
        if !path.starts_with('/') {
            self.push(
                field,
                Rule::Format,
                "Start the health-check path with `/`, e.g. `/healthz`.",
            );
        } else if path.len() > MAX_HEALTH_CHECK_PATH {
            self.push(
                field,
                Rule::TooLong,
                format!("Keep the health-check path under {MAX_HEALTH_CHECK_PATH} characters."),
            );
        } else if !path.bytes().all(plain) {
            self.push(
                field,
                Rule::Format,
                "Use letters, digits and `-._~/%` only in the health-check path (no query).",
            );
        } else if !request.ports.iter().any(|p| p.protocol == Protocol::Http) {
            self.push(
                field,
                Rule::Conflict,
                "Health checks are HTTP requests: add an `http` port, or leave the path empty.",
            );
        }
    }

    fn range(&mut self, field: &str, value: u32, min: u32, max: u32, unit: &str) {
        if !(min..=max).contains(&value) {
            self.push(field, Rule::OutOfRange, format!("Choose between {min} and {max} {unit}."));
        }
    }

    /// A DNS label (DNS-1035, starting with a letter, when `letter_first`); reports and returns
    /// whether it is one.
    fn dns_label(&mut self, field: &str, value: &str, what: &str, letter_first: bool) -> bool {
        let starts_right = !letter_first || value.starts_with(|c: char| c.is_ascii_lowercase());
        if value.is_empty() {
            self.push(field, Rule::Required, format!("{what} is required."));
        } else if value.len() > 63 {
            self.push(field, Rule::TooLong, format!("{what} has at most 63 characters."));
        } else if !is_dns_label(value) || !starts_right {
            let first = if letter_first { "start with a letter, " } else { "" };
            self.push(
                field,
                Rule::Format,
                format!("{what} must {first}use only lowercase letters a–z, digits and '-', and not end with '-'."),
            );
        } else {
            return true;
        }
        false
    }
}

const CPU_HINT: &str = "in cores (`0.5`) or millicores (`500m`)";
const MEMORY_HINT: &str = "in bytes with a unit such as `128Mi` or `1Gi`";

/// The environment variable that tells the app where the Vault Agent writes a secret.
pub fn secret_file_env(secret: &str) -> String {
    format!("{}_FILE", secret.to_ascii_uppercase())
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, ASCII only, so look-alike letters fail.
pub fn is_dns_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// An IANA service name as Kubernetes port names require: at most 15 characters, lowercase
/// letters, digits and single hyphens not at either end, at least one letter.
fn is_port_name(value: &str) -> bool {
    is_dns_label(value)
        && value.len() <= 15
        && !value.contains("--")
        && value.bytes().any(|b| b.is_ascii_lowercase())
}

fn is_secret_name(value: &str) -> bool {
    value.starts_with(|c: char| c.is_ascii_lowercase())
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn is_env_name(value: &str) -> bool {
    !value.starts_with(|c: char| c.is_ascii_digit())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Which live services an admin's upgrade batch covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "scope", content = "value")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum UpgradeScope {
    /// Every live service.
    All,
    /// The live services of one namespace.
    Namespace(String),
    /// The live services of one team.
    Team(String),
}

impl UpgradeScope {
    /// `all`, `namespace:<ns>` or `team:<team>`.
    pub fn label(&self) -> String {
        match self {
            Self::All => "all".to_owned(),
            Self::Namespace(namespace) => format!("namespace:{namespace}"),
            Self::Team(team) => format!("team:{team}"),
        }
    }

    /// Whether the service `namespace`, owned by `team`, is selected.
    pub fn covers(&self, namespace: &str, team: &str) -> bool {
        match self {
            Self::All => true,
            Self::Namespace(selected) => selected == namespace,
            Self::Team(selected) => selected == team,
        }
    }
}

/// What happens to a service's hand edits in an upgrade: never decided silently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum HandEditDecision {
    /// The upgrade writes meshport's rendering over the hand edit.
    Replace,
    /// The upgrade keeps the repository's file; later passes show it as adopted.
    Adopt,
}

/// An upgrade batch as an admin asks for it, checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UpgradeSelection {
    pub scope: UpgradeScope,
    /// Decisions on hand-edited services, keyed `<namespace>/<service>`.
    #[serde(default)]
    pub decisions: std::collections::BTreeMap<String, HandEditDecision>,
}

/// Checks an upgrade batch as posted: `scope` is `all`, `namespace` or `team`, `value` names
/// the namespace or team (a DNS label), each decision's key is `<namespace>/<service>` and
/// its value `replace` or `adopt` (empty: undecided). Every broken rule names its field.
pub fn upgrade_selection(
    scope: &str,
    value: &str,
    decisions: &[(String, String)],
) -> Result<UpgradeSelection, ValidationErrors> {
    let mut errors = Vec::new();
    let mut error = |field: String, rule: Rule, message: String| {
        errors.push(FieldError { field, rule, message })
    };
    let value = value.trim();
    let named = |value: &str| value.to_owned();
    let scope = match scope {
        "all" => Some(UpgradeScope::All),
        "namespace" | "team" if !is_dns_label(value) || value.len() > 63 => {
            error(
                "value".into(),
                if value.is_empty() { Rule::Required } else { Rule::Format },
                format!(
                    "name the {scope} to upgrade: a DNS label (lowercase letters, digits, '-', at \
                     most 63)"
                ),
            );
            None
        }
        "namespace" => Some(UpgradeScope::Namespace(named(value))),
        "team" => Some(UpgradeScope::Team(named(value))),
        _ => {
            error("scope".into(), Rule::NotAllowed, "choose `all`, `namespace` or `team`".into());
            None
        }
    };
    let mut chosen = std::collections::BTreeMap::new();
    for (key, decision) in decisions {
        let field = format!("decisions[{key}]");
        let well_formed = key
            .split_once('/')
            .is_some_and(|(ns, svc)| is_dns_label(ns) && is_dns_label(svc) && key.len() <= 127);
        if !well_formed {
            error(field, Rule::Format, "name the service as `<namespace>/<service>`".into());
            continue;
        }
        match decision.as_str() {
            "" => {}
            "replace" => {
                chosen.insert(key.clone(), HandEditDecision::Replace);
            }
            "adopt" => {
                chosen.insert(key.clone(), HandEditDecision::Adopt);
            }
            _ => error(
                field,
                Rule::NotAllowed,
                "choose `replace` (write meshport's rendering) or `adopt` (keep the hand edit)"
                    .into(),
            ),
        }
    }
    match scope {
        Some(scope) if errors.is_empty() => Ok(UpgradeSelection { scope, decisions: chosen }),
        _ => Err(ValidationErrors(errors)),
    }
}
