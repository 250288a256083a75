//! The onboarding form as the browser posts it: plain text fields (so the page works without
//! JavaScript), turned into an [`OnboardingRequest`] here. Only the text's shape is judged
//! (numbers, `NAME=value` lines); every rule about the request itself is [`super::check`]'s.

use serde::{Deserialize, Serialize};

use super::{
    Alphabet, CertificateSpec, EnvVar, FieldError, OnboardingRequest, OnboardingRules, PortSpec,
    Protocol, Resources, Rule, SecretSource, SecretSpec, SecretValue, WorkloadSecurity,
};

/// How many secret rows the form offers.
pub const SECRET_ROWS: usize = 3;

/// The form's fields, as typed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OnboardForm {
    pub service: String,
    pub namespace: String,
    pub team: String,
    pub justification: String,
    pub image: String,
    pub replicas: String,
    /// One port a line: `name number protocol` (`http`, `grpc` or `tcp`), e.g. `grpc 7070 grpc`,
    /// optionally followed by the port's own callers (`metrics 9464 http monitoring/prometheus`).
    pub ports: String,
    pub cpu_request: String,
    pub memory_request: String,
    pub cpu_limit: String,
    pub memory_limit: String,
    /// One variable a line: `NAME=value`.
    pub env: String,
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
}

/// One secret row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl Default for OnboardForm {
    /// The form as a developer first sees it: the defaults of [`OnboardingRequest`].
    fn default() -> Self {
        let request = OnboardingRequest::default();
        let resources = Resources::default();
        Self {
            service: String::new(),
            namespace: request.namespace,
            team: String::new(),
            justification: String::new(),
            image: String::new(),
            replicas: request.replicas.to_string(),
            ports: "http 8080 http".to_owned(),
            cpu_request: resources.cpu_request,
            memory_request: resources.memory_request,
            cpu_limit: resources.cpu_limit,
            memory_limit: resources.memory_limit,
            env: String::new(),
            callers: String::new(),
            secrets: vec![
                SecretRow {
                    source: "generate".to_owned(),
                    length: "32".to_owned(),
                    alphabet: Alphabet::Alphanumeric.as_str().to_owned(),
                    ..SecretRow::default()
                };
                SECRET_ROWS
            ],
            certificate_ttl_hours: String::new(),
            rotation_days: OnboardingRules::DEFAULT_ROTATION_DAYS.to_string(),
            health_check_path: String::new(),
            run_as_non_root: request.security.run_as_non_root.to_string(),
            read_only_root_filesystem: request.security.read_only_root_filesystem.to_string(),
        }
    }
}

impl OnboardForm {
    /// The request the form describes, or the fields whose text has the wrong shape (named as
    /// the validator names them: `replicas`, `ports[1].number`, `env[0].name`, …).
    pub fn to_request(&self) -> Result<OnboardingRequest, Vec<FieldError>> {
        let (request, errors) = self.parse();
        if errors.is_empty() { Ok(request) } else { Err(errors) }
    }

    /// The errors of the form: its text's shape, then the validator's rules for every field
    /// whose text could be read.
    pub fn errors(&self, rules: &OnboardingRules) -> Vec<FieldError> {
        let (request, mut errors) = self.parse();
        let unreadable: Vec<String> = errors.iter().map(|e| e.field.clone()).collect();
        errors.extend(
            super::check(&request, rules)
                .into_iter()
                .filter(|e| !unreadable.iter().any(|field| e.field.starts_with(field.as_str()))),
        );
        errors
    }

    /// The request as far as the text reads (unreadable numbers as 0), and the shape errors.
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
        for (i, line) in lines(&self.ports).enumerate() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let (name, port, protocol, callers) = match parts.as_slice() {
                [name, port] => (*name, *port, "http", None),
                [name, port, protocol] => (*name, *port, *protocol, None),
                [name, port, protocol, callers @ ..] => {
                    (*name, *port, *protocol, Some(callers_of(&callers.join(" "))))
                }
                _ => {
                    errors.push(format_error(
                        format!("ports[{i}]"),
                        "Write each port as `name number protocol [callers]`, e.g. `grpc 7070 grpc`.",
                    ));
                    continue;
                }
            };
            let protocol = match protocol {
                "http" => Protocol::Http,
                "grpc" => Protocol::Grpc,
                "tcp" => Protocol::Tcp,
                _ => {
                    errors.push(format_error(
                        format!("ports[{i}].protocol"),
                        "The protocol is `http`, `grpc` or `tcp`.",
                    ));
                    continue;
                }
            };
            let number = number(&mut errors, format!("ports[{i}].number"), port, "the port number");
            ports.push(PortSpec {
                name: name.to_owned(),
                number,
                protocol,
                allowed_callers: callers,
            });
        }
        let mut env = Vec::new();
        for (i, line) in lines(&self.env).enumerate() {
            match line.split_once('=') {
                Some((name, value)) => {
                    env.push(EnvVar { name: name.trim().to_owned(), value: value.to_owned() })
                }
                None => errors.push(format_error(
                    format!("env[{i}].name"),
                    "Write each variable as `NAME=value`.",
                )),
            }
        }
        let mut secrets = Vec::new();
        for row in self.secrets.iter().filter(|row| !row.name.trim().is_empty()) {
            let i = secrets.len();
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
        let health_check_path = Some(self.health_check_path.trim())
            .filter(|path| !path.is_empty())
            .map(str::to_owned);
        let security = WorkloadSecurity {
            run_as_non_root: self.run_as_non_root != "false",
            read_only_root_filesystem: self.read_only_root_filesystem != "false",
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

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|line| !line.is_empty())
}

fn format_error(field: String, message: &str) -> FieldError {
    FieldError { field, rule: Rule::Format, message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled() -> OnboardForm {
        let mut form = OnboardForm {
            service: "cart".into(),
            team: "shop".into(),
            justification: "Cart joins the mesh for mTLS.".into(),
            image: "ghcr.io/open-telemetry/demo:2.1.3-cart".into(),
            ports: "grpc 7070 grpc\n\nmetrics 9464".into(),
            env: "VALKEY_ADDR=valkey-cart:6379".into(),
            callers: "frontend, monitoring/prometheus".into(),
            ..OnboardForm::default()
        };
        form.secrets[0].name = "valkey_password".into();
        form.secrets[1] = SecretRow {
            name: "api_key".into(),
            source: "provided".into(),
            value: "typed".into(),
            ..SecretRow::default()
        };
        form
    }

    #[test]
    fn a_filled_form_becomes_a_valid_request() {
        let request = filled().to_request().unwrap();
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
        assert_eq!(request.secrets.len(), 2, "the empty row is unused");
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
        form.ports = "grpc seventy grpc\nweb 80 websocket".into();
        form.env = "JUST_A_NAME".into();
        let fields: Vec<String> =
            form.errors(&OnboardingRules::default()).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["replicas", "ports[0].number", "ports[1].protocol", "env[0].name"]);
    }

    #[test]
    fn a_port_line_may_name_its_own_callers_and_the_options_read_back() {
        let mut form = filled();
        form.ports = "grpc 7070 grpc\nmetrics 9464 http monitoring/prometheus, ops/scraper".into();
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
}
