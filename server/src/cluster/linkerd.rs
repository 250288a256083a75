//! Linkerd's identity chain as the cluster holds it: the trust anchor's and identity issuer's
//! `kubernetes.io/tls` secrets (parsed with x509-parser) and the trust bundle ConfigMap the
//! proxies trust. Besides expiry, the chain itself is checked: an anchor missing from the bundle,
//! or an issuer no bundled certificate signed, breaks mTLS however valid each certificate is.

use app::rotation::{Judgement, RotationState};
use chrono::{DateTime, Utc};
use x509_parser::prelude::{FromDer, X509Certificate};

/// One certificate from a PEM bundle, with what the chain checks need.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedCertificate {
    pub subject: String,
    pub issuer: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub is_ca: bool,
    pub subject_key_id: Option<Vec<u8>>,
    pub authority_key_id: Option<Vec<u8>>,
    /// The whole certificate, to find it in a bundle.
    pub der: Vec<u8>,
}

impl ParsedCertificate {
    /// Whether `self` was issued by `ca`: names match, and key ids too when both are present.
    pub fn issued_by(&self, ca: &ParsedCertificate) -> bool {
        self.issuer == ca.subject
            && match (&self.authority_key_id, &ca.subject_key_id) {
                (Some(aki), Some(ski)) => aki == ski,
                _ => true,
            }
    }
}

/// Every certificate in a PEM text, in order.
pub fn parse_pem_bundle(pem: &[u8]) -> Result<Vec<ParsedCertificate>, String> {
    let mut certificates = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| format!("not PEM: {e}"))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        certificates.push(parse_der(&block.contents)?);
    }
    if certificates.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certificates)
}

fn parse_der(der: &[u8]) -> Result<ParsedCertificate, String> {
    let (_, certificate) =
        X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let at = |time: &x509_parser::time::ASN1Time| {
        DateTime::from_timestamp(time.timestamp(), 0).ok_or("a validity date out of range")
    };
    let mut subject_key_id = None;
    let mut authority_key_id = None;
    for extension in certificate.extensions() {
        match extension.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                subject_key_id = Some(id.0.to_vec());
            }
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(id) => {
                authority_key_id = id.key_identifier.as_ref().map(|k| k.0.to_vec());
            }
            _ => {}
        }
    }
    Ok(ParsedCertificate {
        subject: certificate.subject().to_string(),
        issuer: certificate.issuer().to_string(),
        not_before: at(&certificate.validity().not_before)?,
        not_after: at(&certificate.validity().not_after)?,
        is_ca: certificate.is_ca(),
        subject_key_id,
        authority_key_id,
        der: der.to_vec(),
    })
}

/// Judges the trust anchor: valid, a CA, and present in the bundle the proxies trust.
pub fn judge_anchor(
    anchor: &ParsedCertificate,
    bundle: Option<&[ParsedCertificate]>,
    now: DateTime<Utc>,
) -> Judgement {
    let judged = match ca_validity(anchor, "trust anchor", now) {
        Ok(judged) => judged,
        Err(verdict) => return verdict,
    };
    if let Some(bundle) = bundle
        && !bundle.iter().any(|c| c.der == anchor.der)
    {
        return Judgement::new(
            RotationState::Failing,
            format!(
                "the trust anchor is not in the trust bundle, so proxies will not trust identities it signs; {}",
                judged.reason
            ),
        );
    }
    judged
}

/// Judges the identity issuer: valid, a CA, and signed by a certificate in the bundle.
pub fn judge_issuer(
    issuer: &ParsedCertificate,
    bundle: Option<&[ParsedCertificate]>,
    now: DateTime<Utc>,
) -> Judgement {
    let judged = match ca_validity(issuer, "identity issuer", now) {
        Ok(judged) => judged,
        Err(verdict) => return verdict,
    };
    if let Some(bundle) = bundle
        && !bundle.iter().any(|ca| issuer.issued_by(ca) && ca.not_after > now)
    {
        return Judgement::new(
            RotationState::Failing,
            format!(
                "no valid certificate in the trust bundle signed the identity issuer (issued by {}); {}",
                issuer.issuer, judged.reason
            ),
        );
    }
    judged
}

/// Judges the bundle by the certificate that lasts longest (the one proxies keep trusting);
/// expired leftovers of a rotation are named but do not fail it.
pub fn judge_bundle(bundle: &[ParsedCertificate], now: DateTime<Utc>) -> Judgement {
    let Some(last) = bundle.iter().max_by_key(|c| c.not_after) else {
        return Judgement::new(RotationState::Failing, "the trust bundle holds no certificate");
    };
    let judged = validity(last, now);
    let expired = bundle.iter().filter(|c| c.not_after <= now).count();
    if expired > 0 && judged.state != RotationState::Expired {
        return Judgement::new(
            judged.state,
            format!("{}; {expired} expired certificate(s) still in the bundle", judged.reason),
        );
    }
    judged
}

/// A CA's validity, or the verdict that ends its judgement (expired, or not a CA at all).
fn ca_validity(
    certificate: &ParsedCertificate,
    what: &str,
    now: DateTime<Utc>,
) -> Result<Judgement, Judgement> {
    let judged = validity(certificate, now);
    if judged.state == RotationState::Expired {
        return Err(judged);
    }
    if !certificate.is_ca {
        return Err(Judgement::new(
            RotationState::Failing,
            format!("the {what} is not a CA certificate"),
        ));
    }
    Ok(judged)
}

/// Expiry by the lifetime rule shared with Vault PKI certificates.
fn validity(certificate: &ParsedCertificate, now: DateTime<Utc>) -> Judgement {
    app::rotation::judge_certificate(certificate.not_before, certificate.not_after, None, now)
}
