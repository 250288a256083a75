//! Onboarding: what a developer asks for ([`OnboardingRequest`]), the one validator that judges it
//! in the browser and on the server ([`check`], [`ValidRequest`]), and where a request is in its
//! lifecycle ([`RequestStatus`]).

mod changes;
mod form;
mod lifecycle;
mod quantity;
mod reference;
mod request;
mod validate;

pub use changes::{SpecDifference, spec_differences};
pub use form::{
    EnvRow, FormPost, OnboardForm, PortRow, RowEdit, RowGroup, SecretRow, field_name,
    row_field_name,
};
pub use lifecycle::{ChangeKind, RequestStatus, UnknownStatus};
pub use reference::ImageReference;
pub use request::{
    Alphabet, CertificateSpec, Delivery, EnvVar, OnboardingRequest, OnboardingRules, PortSpec,
    Protocol, Resources, RotationPlan, RotationPolicy, SecretSource, SecretSpec, SecretValue,
    WorkloadSecurity,
};
pub use validate::{
    CERTIFICATE_FILE_ENV, FieldError, LINKERD_PROXY_PORTS, MAX_RELOAD_COMMAND, MAX_SECRET_NAME,
    RESERVED_SERVICE_NAMES, Rule, ValidRequest, ValidationErrors, check, is_dns_label,
    secret_file_env,
};
pub use validate::{HandEditDecision, UpgradeScope, UpgradeSelection, upgrade_selection};

#[cfg(test)]
mod tests;
