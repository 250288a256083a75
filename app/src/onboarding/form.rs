//! The onboarding form as the browser posts it: text fields, with one row per port, variable
//! and secret, so the page works without JavaScript. [`OnboardForm::to_request`] turns it into
//! an [`OnboardingRequest`] and [`OnboardForm::from_request`] back. Only the text's shape is
//! judged here (numbers, protocols); every rule about the request itself is [`super::check`]'s.
//!
//! Field names are serde_qs's (what server functions and [`FormPost::decode`] read):
//! `form[service]`, `form[ports][0][name]`, `form[env][1][value]`, `form[secrets][0][source]`,
//! … ([`field_name`], [`row_field_name`]). The JSON shape of [`OnboardingRequest`] is not
//! affected.

use serde::{Deserialize, Serialize};

use super::{
    Alphabet, CertificateSpec, Delivery, EnvVar, FieldError, OnboardingRequest, OnboardingRules,
    PortSpec, Protocol, Resources, RotationPlan, RotationPolicy, Rule, SecretSource, SecretSpec,
    SecretValue, WorkloadSecurity,
};

/// The form's fields, as typed. `Default` is the empty form (what a post without a field
/// means); [`OnboardForm::from_request`] of [`OnboardingRequest::default`] is the first view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OnboardForm {
    pub service: String,
    pub namespace: String,
    pub team: String,
    pub justification: String,
    pub image: String,
    pub replicas: String,
    /// Port rows; a blank row is unused.
    pub ports: Vec<PortRow>,
    pub cpu_request: String,
    pub memory_request: String,
    pub cpu_limit: String,
    pub memory_limit: String,
    /// Variable rows; a blank row is unused.
    pub env: Vec<EnvRow>,
    /// Callers separated by spaces, commas or lines: `name` or `namespace/name`.
    pub callers: String,
    /// Secret rows; a row without a name is unused.
    pub secrets: Vec<SecretRow>,
    /// Hours of a Vault PKI certificate's lifetime; empty for none.
    pub certificate_ttl_hours: String,
    pub rotation_days: String,
    /// HTTP path of the readiness and liveness probes; empty for none.
    pub health_check_path: String,
    /// `true` (default) or `false`.
    pub run_as_non_root: String,
    /// `true` (default) or `false`.
    pub read_only_root_filesystem: String,
    /// `manual` (default) or `automatic`.
    pub rotation_policy: String,
    /// `none` (default), `reload` or `restart`.
    pub delivery: String,
    /// The agent's command after a re-render (`reload` only); empty for none.
    pub reload_command: String,
}

/// One port row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortRow {
    pub name: String,
    pub number: String,
    /// `http`, `grpc` or `tcp`.
    pub protocol: String,
    /// The port's own callers, separated by spaces or commas; empty: the service's callers.
    pub callers: String,
}

impl Default for PortRow {
    fn default() -> Self {
        Self {
            name: String::new(),
            number: String::new(),
            protocol: Protocol::Http.as_str().to_owned(),
            callers: String::new(),
        }
    }
}

impl PortRow {
    fn is_blank(&self) -> bool {
        [&self.name, &self.number, &self.callers].iter().all(|text| text.trim().is_empty())
    }
}

/// One environment variable row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnvRow {
    pub name: String,
    pub value: String,
}

impl EnvRow {
    fn is_blank(&self) -> bool {
        self.name.trim().is_empty() && self.value.is_empty()
    }
}

/// One secret row. Its `Debug` never prints the typed value, so a form in a log line or a
/// panic message does not carry it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecretRow {
    pub name: String,
    /// `generate`, `provided` or `existing`.
    pub source: String,
    /// The typed value (`provided` only). Never shown back.
    pub value: String,
    /// Generated length.
    pub length: String,
    /// Generated alphabet: `alphanumeric`, `alphanumeric_symbols` or `hex`.
    pub alphabet: String,
    /// A value was typed, and dropped when the form came back from the server (which never
    /// sends a secret value to the browser): the row asks for it again.
    pub retype: bool,
}

impl std::fmt::Debug for SecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = if self.value.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("SecretRow")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("value", &value)
            .field("length", &self.length)
            .field("alphabet", &self.alphabet)
            .field("retype", &self.retype)
            .finish()
    }
}

impl Default for SecretRow {
    /// A new row: a generated secret.
    fn default() -> Self {
        Self {
            name: String::new(),
            source: "generate".to_owned(),
            value: String::new(),
            length: "32".to_owned(),
            alphabet: Alphabet::Alphanumeric.as_str().to_owned(),
            retype: false,
        }
    }
}

impl SecretRow {
    fn is_blank(&self) -> bool {
        self.name.trim().is_empty()
    }
}

/// The repeated parts of the form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowGroup {
    Ports,
    Env,
    Secrets,
}

impl RowGroup {
    /// The group's name in field names, buttons and the validator's paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ports => "ports",
            Self::Env => "env",
            Self::Secrets => "secrets",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Self::Ports, Self::Env, Self::Secrets].into_iter().find(|g| g.as_str() == name)
    }
}

/// What an "add" or "remove" row button asks for. Without JavaScript the button submits the
/// form as `row=<value>`, and the page comes back edited instead of the form being submitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowEdit {
    Add(RowGroup),
    Remove(RowGroup, usize),
}

impl RowEdit {
    /// The button's value: `add ports`, `remove env 2`.
    pub fn value(self) -> String {
        match self {
            Self::Add(group) => format!("add {}", group.as_str()),
            Self::Remove(group, row) => format!("remove {} {row}", group.as_str()),
        }
    }

    /// The edit a button's value asks for.
    pub fn parse(value: &str) -> Option<Self> {
        match value.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["add", group] => Some(Self::Add(RowGroup::parse(group)?)),
            ["remove", group, row] => {
                Some(Self::Remove(RowGroup::parse(group)?, row.parse().ok()?))
            }
            _ => None,
        }
    }
}

/// The HTML name of a field of the form: `form[service]`.
pub fn field_name(field: &str) -> String {
    format!("form[{field}]")
}

/// The HTML name of a field of a row: `form[ports][0][name]`.
pub fn row_field_name(group: RowGroup, row: usize, field: &str) -> String {
    format!("form[{}][{row}][{field}]", group.as_str())
}

/// The form's page posted without JavaScript: the form, and the row button pressed if any
/// (none: the form is submitted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FormPost {
    pub form: OnboardForm,
    /// A [`RowEdit::value`].
    pub row: Option<String>,
}

#[cfg(any(feature = "ssr", test))]
impl FormPost {
    /// Decodes an `application/x-www-form-urlencoded` body.
    pub fn decode(body: &[u8]) -> Result<Self, String> {
        // Not strict: browsers percent-encode the brackets of `form[ports][0][name]`.
        serde_qs::Config::new(5, false).deserialize_bytes(body).map_err(|e| e.to_string())
    }
}

impl OnboardForm {
    /// The form showing `request`: how it first opens (with [`OnboardingRequest::default`]),
    /// or opens on a live service's spec. Secret values are never carried over.
    pub fn from_request(request: &OnboardingRequest) -> Self {
        let resources = &request.resources;
        Self {
            service: request.service.clone(),
            namespace: request.namespace.clone(),
            team: request.team.clone(),
            justification: request.justification.clone(),
            image: request.image.clone(),
            replicas: request.replicas.to_string(),
            ports: request
                .ports
                .iter()
                .map(|port| PortRow {
                    name: port.name.clone(),
                    number: port.number.to_string(),
                    protocol: port.protocol.as_str().to_owned(),
                    callers: port
                        .allowed_callers
                        .as_ref()
                        .map(|c| c.join(", "))
                        .unwrap_or_default(),
                })
                .collect(),
            cpu_request: resources.cpu_request.clone(),
            memory_request: resources.memory_request.clone(),
            cpu_limit: resources.cpu_limit.clone(),
            memory_limit: resources.memory_limit.clone(),
            env: request
                .env
                .iter()
                .map(|var| EnvRow { name: var.name.clone(), value: var.value.clone() })
                .collect(),
            callers: request.allowed_callers.join(", "),
            secrets: request
                .secrets
                .iter()
                .map(|secret| {
                    let row = SecretRow { name: secret.name.clone(), ..SecretRow::default() };
                    match secret.source {
                        SecretSource::Generate { length, alphabet } => SecretRow {
                            length: length.to_string(),
                            alphabet: alphabet.as_str().to_owned(),
                            ..row
                        },
                        SecretSource::Provided { .. } => {
                            SecretRow { source: "provided".to_owned(), ..row }
                        }
                        SecretSource::Existing => {
                            SecretRow { source: "existing".to_owned(), ..row }
                        }
                    }
                })
                .collect(),
            certificate_ttl_hours: request
                .certificate
                .as_ref()
                .map(|c| c.ttl_hours.to_string())
                .unwrap_or_default(),
            rotation_days: request.rotation_days.to_string(),
            health_check_path: request.health_check_path.clone().unwrap_or_default(),
            run_as_non_root: request.security.run_as_non_root.to_string(),
            read_only_root_filesystem: request.security.read_only_root_filesystem.to_string(),
            rotation_policy: request.rotation.policy.as_str().to_owned(),
            delivery: request.rotation.delivery.as_str().to_owned(),
            reload_command: request.rotation.reload_command.clone().unwrap_or_default(),
        }
    }

    /// How many rows `group` has.
    pub fn rows(&self, group: RowGroup) -> usize {
        match group {
            RowGroup::Ports => self.ports.len(),
            RowGroup::Env => self.env.len(),
            RowGroup::Secrets => self.secrets.len(),
        }
    }

    /// Adds or removes a row (removing a row that is not there changes nothing).
    pub fn edit(&mut self, edit: RowEdit) {
        fn remove<T>(rows: &mut Vec<T>, row: usize) {
            if row < rows.len() {
                rows.remove(row);
            }
        }
        match edit {
            RowEdit::Add(RowGroup::Ports) => self.ports.push(PortRow::default()),
            RowEdit::Add(RowGroup::Env) => self.env.push(EnvRow::default()),
            RowEdit::Add(RowGroup::Secrets) => self.secrets.push(SecretRow::default()),
            RowEdit::Remove(RowGroup::Ports, row) => remove(&mut self.ports, row),
            RowEdit::Remove(RowGroup::Env, row) => remove(&mut self.env, row),
            RowEdit::Remove(RowGroup::Secrets, row) => remove(&mut self.secrets, row),
        }
    }

    /// The validator's path of a row (`ports[1]`: blank rows are skipped, so it can differ
    /// from the row's place), or `None` for a blank row.
    pub fn row_path(&self, group: RowGroup, row: usize) -> Option<String> {
        let used = |i: usize| match group {
            RowGroup::Ports => self.ports.get(i).is_some_and(|r| !r.is_blank()),
            RowGroup::Env => self.env.get(i).is_some_and(|r| !r.is_blank()),
            RowGroup::Secrets => self.secrets.get(i).is_some_and(|r| !r.is_blank()),
        };
        used(row).then(|| format!("{}[{}]", group.as_str(), (0..row).filter(|&i| used(i)).count()))
    }

    /// The form with every typed secret value dropped, the rows that had one asking for it
    /// again: the only form the server shows back.
    pub fn without_secret_values(&self) -> Self {
        let mut form = self.clone();
        for row in &mut form.secrets {
            row.retype |= row.source == "provided" && !row.value.is_empty();
            row.value.clear();
        }
        form
    }

    /// The request the form describes, or the fields whose text has the wrong shape (named as
    /// the validator names them: `replicas`, `ports[1].number`, …).
    pub fn to_request(&self) -> Result<OnboardingRequest, Vec<FieldError>> {
        let (request, errors) = self.parse();
        if errors.is_empty() { Ok(request) } else { Err(errors) }
    }

    /// The errors of the form: its text's shape, then the validator's rules for every field
    /// whose text could be read.
    pub fn errors(&self, rules: &OnboardingRules) -> Vec<FieldError> {
        self.errors_against(None, rules)
    }

    /// [`OnboardForm::errors`] for a change of the live spec `live` when given (the
    /// validator's [`super::ValidRequest::change_of`]), else for a new service.
    pub fn errors_against(
        &self,
        live: Option<&OnboardingRequest>,
        rules: &OnboardingRules,
    ) -> Vec<FieldError> {
        let (request, mut errors) = self.parse();
        let unreadable: Vec<String> = errors.iter().map(|e| e.field.clone()).collect();
        let judged = match live {
            None => super::check(&request, rules),
            Some(live) => super::ValidRequest::change_of(request, live, rules)
                .err()
                .map(|e| e.0)
                .unwrap_or_default(),
        };
        errors.extend(
            judged
                .into_iter()
                .filter(|e| !unreadable.iter().any(|field| e.field.starts_with(field.as_str()))),
        );
        errors
    }

    /// The request as far as the text reads (unreadable numbers as 0, protocols as HTTP), and
    /// the shape errors. Blank rows are skipped; every other row becomes an element, so the
    /// validator's indices are [`Self::row_path`]'s.
    fn parse(&self) -> (OnboardingRequest, Vec<FieldError>) {
        let mut errors = Vec::new();
        let replicas = number(&mut errors, "replicas", &self.replicas, "the replica count");
        let rotation_days = number(
            &mut errors,
            "rotation_days",
            &self.rotation_days,
            "the rotation period in days",
        );
        let certificate =
            (!self.certificate_ttl_hours.trim().is_empty()).then(|| CertificateSpec {
                ttl_hours: number(
                    &mut errors,
                    "certificate.ttl_hours",
                    &self.certificate_ttl_hours,
                    "the certificate lifetime in hours",
                ),
            });
        let mut ports = Vec::new();
        for (i, row) in self.ports.iter().filter(|row| !row.is_blank()).enumerate() {
            let protocol = Protocol::ALL
                .into_iter()
                .find(|p| p.as_str() == row.protocol.trim())
                .unwrap_or_else(|| {
                    errors.push(FieldError {
                        field: format!("ports[{i}].protocol"),
                        rule: Rule::Format,
                        message: "The protocol is `http`, `grpc` or `tcp`.".to_owned(),
                    });
                    Protocol::Http
                });
            let number =
                number(&mut errors, format!("ports[{i}].number"), &row.number, "the port number");
            let callers = callers_of(&row.callers);
            ports.push(PortSpec {
                name: row.name.trim().to_owned(),
                number,
                protocol,
                allowed_callers: (!callers.is_empty()).then_some(callers),
            });
        }
        let env = self
            .env
            .iter()
            .filter(|row| !row.is_blank())
            .map(|row| EnvVar { name: row.name.trim().to_owned(), value: row.value.clone() })
            .collect();
        let mut secrets = Vec::new();
        for (i, row) in self.secrets.iter().filter(|row| !row.is_blank()).enumerate() {
            let source = match row.source.as_str() {
                "provided" => SecretSource::Provided { value: SecretValue::new(row.value.clone()) },
                "existing" => SecretSource::Existing,
                _ => {
                    let alphabet = Alphabet::ALL
                        .into_iter()
                        .find(|a| a.as_str() == row.alphabet)
                        .unwrap_or(Alphabet::Alphanumeric);
                    let length = number(
                        &mut errors,
                        format!("secrets[{i}].source.length"),
                        &row.length,
                        "the length",
                    );
                    SecretSource::Generate { length, alphabet }
                }
            };
            secrets.push(SecretSpec { name: row.name.trim().to_owned(), source });
        }
        let allowed_callers = callers_of(&self.callers);
        let health_check_path =
            Some(self.health_check_path.trim()).filter(|path| !path.is_empty()).map(str::to_owned);
        let security = WorkloadSecurity {
            run_as_non_root: self.run_as_non_root != "false",
            read_only_root_filesystem: self.read_only_root_filesystem != "false",
        };
        let policy = match self.rotation_policy.trim() {
            "" => RotationPolicy::default(),
            text => {
                RotationPolicy::ALL.into_iter().find(|p| p.as_str() == text).unwrap_or_else(|| {
                    errors.push(FieldError {
                        field: "rotation.policy".to_owned(),
                        rule: Rule::Format,
                        message: "The rotation policy is `manual` or `automatic`.".to_owned(),
                    });
                    RotationPolicy::default()
                })
            }
        };
        let delivery = match self.delivery.trim() {
            "" => Delivery::default(),
            text => Delivery::ALL.into_iter().find(|d| d.as_str() == text).unwrap_or_else(|| {
                errors.push(FieldError {
                    field: "rotation.delivery".to_owned(),
                    rule: Rule::Format,
                    message: "The delivery is `none`, `reload` or `restart`.".to_owned(),
                });
                Delivery::default()
            }),
        };
        let rotation = RotationPlan {
            policy,
            delivery,
            reload_command: Some(self.reload_command.trim())
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
        };
        let request = OnboardingRequest {
            service: self.service.trim().to_owned(),
            namespace: self.namespace.trim().to_owned(),
            team: self.team.trim().to_owned(),
            justification: self.justification.trim().to_owned(),
            image: self.image.trim().to_owned(),
            replicas,
            ports,
            resources: Resources {
                cpu_request: self.cpu_request.trim().to_owned(),
                memory_request: self.memory_request.trim().to_owned(),
                cpu_limit: self.cpu_limit.trim().to_owned(),
                memory_limit: self.memory_limit.trim().to_owned(),
            },
            env,
            secrets,
            allowed_callers,
            certificate,
            rotation_days,
            health_check_path,
            security,
            rotation,
        };
        (request, errors)
    }
}

/// `text` as a whole number; an error naming `field` when it is not one.
fn number(errors: &mut Vec<FieldError>, field: impl Into<String>, text: &str, what: &str) -> u32 {
    text.trim().parse().unwrap_or_else(|_| {
        errors.push(FieldError {
            field: field.into(),
            rule: Rule::Format,
            message: format!("Write {what} as a whole number."),
        });
        0
    })
}

/// Callers separated by spaces, commas or lines.
fn callers_of(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_secret_value_never_reaches_debug_output() {
        let row = SecretRow {
            name: "api_key".into(),
            source: "provided".into(),
            value: "typed-by-dana".into(),
            ..SecretRow::default()
        };
        let form = OnboardForm { secrets: vec![row], ..OnboardForm::default() };
        let printed = format!("{form:?} {form:#?}");
        assert!(!printed.contains("typed-by-dana"), "{printed}");
        assert!(printed.contains("<redacted>") && printed.contains("api_key"), "{printed}");
    }

    fn port(name: &str, number: &str, protocol: &str, callers: &str) -> PortRow {
        PortRow {
            name: name.into(),
            number: number.into(),
            protocol: protocol.into(),
            callers: callers.into(),
        }
    }

    fn filled() -> OnboardForm {
        OnboardForm {
            service: "cart".into(),
            team: "shop".into(),
            justification: "Cart joins the mesh for mTLS.".into(),
            image: "ghcr.io/open-telemetry/demo:2.1.3-cart".into(),
            ports: vec![
                port("grpc", "7070", "grpc", ""),
                PortRow::default(),
                port("metrics", "9464", "http", ""),
            ],
            env: vec![EnvRow { name: "VALKEY_ADDR".into(), value: "valkey-cart:6379".into() }],
            callers: "frontend, monitoring/prometheus".into(),
            secrets: vec![
                SecretRow { name: "valkey_password".into(), ..SecretRow::default() },
                SecretRow::default(),
                SecretRow {
                    name: "api_key".into(),
                    source: "provided".into(),
                    value: "typed".into(),
                    ..SecretRow::default()
                },
            ],
            ..OnboardForm::from_request(&OnboardingRequest::default())
        }
    }

    /// Percent-encodes `name=value` pairs as a browser posts a form.
    fn browser_body(pairs: &[(String, &str)]) -> String {
        let encode = |text: &str| {
            text.bytes()
                .map(|b| match b {
                    b' ' => "+".to_owned(),
                    b if b.is_ascii_alphanumeric() || b"-_.*".contains(&b) => {
                        (b as char).to_string()
                    }
                    b => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        pairs
            .iter()
            .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    #[test]
    fn a_filled_form_becomes_a_valid_request() {
        let request = filled().to_request().unwrap();
        assert_eq!(request.ports.len(), 2, "the blank row is unused");
        assert_eq!(
            request.ports[1],
            PortSpec {
                name: "metrics".into(),
                number: 9464,
                protocol: Protocol::Http,
                allowed_callers: None
            }
        );
        assert_eq!(request.security, WorkloadSecurity::default());
        assert_eq!(request.health_check_path, None);
        assert_eq!(request.allowed_callers, ["frontend", "monitoring/prometheus"]);
        assert_eq!(request.secrets.len(), 2, "the row without a name is unused");
        assert_eq!(
            request.secrets[1].source,
            SecretSource::Provided { value: SecretValue::new("typed") }
        );
        assert_eq!(filled().errors(&OnboardingRules::default()), vec![]);
    }

    #[test]
    fn badly_shaped_text_names_the_field_as_the_validator_would() {
        let mut form = filled();
        form.replicas = "two".into();
        form.ports = vec![port("grpc", "seventy", "grpc", ""), port("web", "80", "websocket", "")];
        let fields: Vec<String> =
            form.errors(&OnboardingRules::default()).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["replicas", "ports[0].number", "ports[1].protocol"]);
    }

    #[test]
    fn blank_rows_are_skipped_so_a_rows_path_is_its_place_among_the_used_ones() {
        let mut form = filled();
        form.ports[2].name = "Metrics!".into();
        let errors = form.errors(&OnboardingRules::default());
        assert_eq!(errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["ports[1].name"]);
        assert_eq!(form.row_path(RowGroup::Ports, 2).as_deref(), Some("ports[1]"));
        assert_eq!(form.row_path(RowGroup::Ports, 1), None, "blank");
        assert_eq!(form.row_path(RowGroup::Secrets, 2).as_deref(), Some("secrets[1]"));
        assert_eq!(form.row_path(RowGroup::Env, 5), None, "no such row");
    }

    #[test]
    fn a_port_row_may_name_its_own_callers_and_the_options_read_back() {
        let mut form = filled();
        form.ports[2].callers = "monitoring/prometheus, ops/scraper".into();
        form.health_check_path = " /healthz ".into();
        form.read_only_root_filesystem = "false".into();
        let request = form.to_request().unwrap();
        assert_eq!(request.ports[0].allowed_callers, None);
        assert_eq!(
            request.ports[1].allowed_callers.as_deref(),
            Some(&["monitoring/prometheus".to_owned(), "ops/scraper".to_owned()][..])
        );
        assert_eq!(request.ports[1].callers(&request), ["monitoring/prometheus", "ops/scraper"]);
        assert_eq!(request.ports[0].callers(&request), ["frontend", "monitoring/prometheus"]);
        assert_eq!(request.health_check_path.as_deref(), Some("/healthz"));
        assert!(request.security.run_as_non_root && !request.security.read_only_root_filesystem);
        assert_eq!(form.errors(&OnboardingRules::default()), vec![]);
    }

    #[test]
    fn rule_violations_come_from_the_shared_validator() {
        let mut form = filled();
        form.service = "Cart!".into();
        let errors = form.errors(&OnboardingRules::default());
        assert!(errors.iter().any(|e| e.field == "service"), "{errors:?}");
    }

    #[test]
    fn a_request_becomes_form_fields_and_the_same_request_again() {
        let request = OnboardingRequest {
            service: "cart".into(),
            team: "shop".into(),
            justification: "Cart joins the mesh for mTLS.\nIt needs Valkey.".into(),
            image: "ghcr.io/open-telemetry/demo:2.1.3-cart".into(),
            replicas: 3,
            ports: vec![
                PortSpec {
                    name: "grpc".into(),
                    number: 7070,
                    protocol: Protocol::Grpc,
                    allowed_callers: None,
                },
                PortSpec {
                    name: "metrics".into(),
                    number: 9464,
                    protocol: Protocol::Http,
                    allowed_callers: Some(vec![
                        "monitoring/prometheus".into(),
                        "ops/scraper".into(),
                    ]),
                },
            ],
            env: vec![
                EnvVar { name: "VALKEY_ADDR".into(), value: "valkey-cart:6379".into() },
                EnvVar { name: "GREETING".into(), value: " a & b = c ".into() },
            ],
            secrets: vec![
                SecretSpec {
                    name: "valkey_password".into(),
                    source: SecretSource::Generate { length: 48, alphabet: Alphabet::Hex },
                },
                SecretSpec {
                    name: "api_key".into(),
                    source: SecretSource::Provided { value: SecretValue::default() },
                },
                SecretSpec { name: "tls_seed".into(), source: SecretSource::Existing },
            ],
            allowed_callers: vec!["frontend".into(), "shop/checkout".into()],
            certificate: Some(CertificateSpec { ttl_hours: 72 }),
            health_check_path: Some("/healthz".into()),
            security: WorkloadSecurity { run_as_non_root: true, read_only_root_filesystem: false },
            ..OnboardingRequest::default()
        };
        let form = OnboardForm::from_request(&request);
        let post = FormPost { form: form.clone(), row: None };
        let fields = serde_qs::to_string(&post).unwrap();
        let decoded = FormPost::decode(fields.as_bytes()).unwrap();
        assert_eq!(decoded, post, "{fields}");
        assert_eq!(decoded.form.to_request(), Ok(request.clone()));
        assert_eq!(
            OnboardForm::from_request(&OnboardingRequest::default()).to_request(),
            Ok(OnboardingRequest::default())
        );

        // The same fields as a browser posts them, under the names the page gives its inputs.
        let mut pairs = vec![
            (field_name("service"), "cart"),
            (field_name("justification"), "Cart joins the mesh for mTLS.\nIt needs Valkey."),
            (field_name("replicas"), "3"),
            (field_name("rotation_days"), "30"),
        ];
        for (i, port) in form.ports.iter().enumerate() {
            pairs.push((row_field_name(RowGroup::Ports, i, "name"), &port.name));
            pairs.push((row_field_name(RowGroup::Ports, i, "number"), &port.number));
            pairs.push((row_field_name(RowGroup::Ports, i, "protocol"), &port.protocol));
            pairs.push((row_field_name(RowGroup::Ports, i, "callers"), &port.callers));
        }
        for (i, var) in form.env.iter().enumerate() {
            pairs.push((row_field_name(RowGroup::Env, i, "name"), &var.name));
            pairs.push((row_field_name(RowGroup::Env, i, "value"), &var.value));
        }
        pairs.push((row_field_name(RowGroup::Secrets, 0, "name"), "api_key"));
        pairs.push((row_field_name(RowGroup::Secrets, 0, "source"), "provided"));
        pairs.push((row_field_name(RowGroup::Secrets, 0, "value"), "s3cr&t=+"));
        pairs.push(("row".into(), "add ports"));
        let posted = FormPost::decode(browser_body(&pairs).as_bytes()).unwrap();
        assert_eq!(posted.form.service, "cart");
        assert_eq!(posted.form.justification, request.justification);
        assert_eq!((posted.form.ports.clone(), posted.form.env.clone()), (form.ports, form.env));
        assert_eq!(posted.form.secrets[0].value, "s3cr&t=+");
        assert_eq!(
            posted.row.as_deref().and_then(RowEdit::parse),
            Some(RowEdit::Add(RowGroup::Ports))
        );
        let back = posted.form.to_request().unwrap();
        assert_eq!((back.ports, back.env), (request.ports, request.env));
    }

    #[test]
    fn row_buttons_add_and_remove_rows() {
        let mut form = filled();
        for edit in [RowEdit::Add(RowGroup::Env), RowEdit::Remove(RowGroup::Ports, 1)] {
            assert_eq!(RowEdit::parse(&edit.value()), Some(edit));
            form.edit(edit);
        }
        assert_eq!(form.env, [filled().env[0].clone(), EnvRow::default()]);
        assert_eq!(
            form.ports.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["grpc", "metrics"]
        );
        form.edit(RowEdit::Remove(RowGroup::Secrets, 7));
        form.edit(RowEdit::Add(RowGroup::Secrets));
        assert_eq!(form.rows(RowGroup::Secrets), 4);
        assert_eq!(form.secrets[3], SecretRow::default());
        for bogus in ["", "add", "add rows", "remove ports", "remove ports -1", "delete env 0"] {
            assert_eq!(RowEdit::parse(bogus), None, "{bogus}");
        }
    }

    #[test]
    fn typed_secret_values_are_dropped_and_asked_for_again() {
        let shown = filled().without_secret_values();
        assert!(shown.secrets.iter().all(|row| row.value.is_empty()));
        assert_eq!(
            shown.secrets.iter().map(|row| row.retype).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(
            OnboardForm { secrets: vec![], ..shown },
            OnboardForm { secrets: vec![], ..filled() }
        );
    }
}
