//! The status report in Prometheus' text format, for `/metrics`: per item its expiry (or due)
//! and renewal timestamps and a gauge per state, per state the item count, per source whether
//! it was reachable.

use std::fmt::Write;

use app::rotation::RotationState;
use app::status_report::{StatusItem, StatusReport};

use crate::process_metrics::escape;

/// The report as Prometheus text exposition (version 0.0.4).
pub fn render(report: &StatusReport) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "meshport_status_expiry_timestamp_seconds",
        "When the item expires (certificates) or its rotation is due (secrets), Unix time.",
    );
    for item in &report.items {
        if let Some(at) = item.expires_at {
            let _ =
                writeln!(out, "meshport_status_expiry_timestamp_seconds{{{}}} {at}", labels(item));
        }
    }
    family(
        &mut out,
        "meshport_status_renewal_timestamp_seconds",
        "When cert-manager renews the certificate, Unix time.",
    );
    for item in &report.items {
        if let Some(at) = item.renews_at {
            let _ =
                writeln!(out, "meshport_status_renewal_timestamp_seconds{{{}}} {at}", labels(item));
        }
    }
    family(
        &mut out,
        "meshport_status_state",
        "1 for the item's current state (ok, due_soon, overdue, failing, expired), 0 for the others.",
    );
    for item in &report.items {
        let labels = labels(item);
        for state in RotationState::ALL {
            let value = u8::from(item.judgement.state == state);
            let _ = writeln!(
                out,
                "meshport_status_state{{{labels},state=\"{}\"}} {value}",
                state.as_str()
            );
        }
    }
    family(&mut out, "meshport_status_items", "Items per state.");
    for (state, count) in report.counts() {
        let _ = writeln!(out, "meshport_status_items{{state=\"{}\"}} {count}", state.as_str());
    }
    family(
        &mut out,
        "meshport_status_source_up",
        "1 when the last read of the source (a cluster or vault) succeeded.",
    );
    for source in &report.sources {
        let _ = writeln!(
            out,
            "meshport_status_source_up{{source=\"{}\"}} {}",
            escape(&source.name),
            u8::from(source.reachable)
        );
    }
    family(
        &mut out,
        "meshport_status_last_refresh_timestamp_seconds",
        "When the status was last refreshed, Unix time.",
    );
    let _ = writeln!(out, "meshport_status_last_refresh_timestamp_seconds {}", report.generated_at);
    out
}

/// A gauge family's opening lines.
fn family(out: &mut String, name: &str, help: &str) {
    crate::process_metrics::family(out, name, help, "gauge");
}

fn labels(item: &StatusItem) -> String {
    format!(
        "kind=\"{}\",source=\"{}\",namespace=\"{}\",name=\"{}\",service=\"{}\"",
        item.kind.as_str(),
        escape(&item.source),
        escape(&item.namespace),
        escape(&item.name),
        escape(item.service.as_deref().unwrap_or_default()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::rotation::Judgement;
    use app::status_report::ItemKind;

    #[test]
    fn label_values_are_escaped_and_each_item_has_one_state_set() {
        let report = StatusReport {
            generated_at: 10,
            sources: vec![],
            items: vec![StatusItem {
                kind: ItemKind::Secret,
                source: "vault".into(),
                namespace: "prod-app".into(),
                name: "cart/a\"b\\c\nd".into(),
                service: Some("prod-app/cart".into()),
                expires_at: Some(99),
                renews_at: None,
                judgement: Judgement::new(RotationState::Overdue, "late"),
            }],
        };
        let text = render(&report);
        assert!(text.contains(r#"name="cart/a\"b\\c\nd""#), "{text}");
        assert!(text.contains(r#"state="overdue"} 1"#));
        assert_eq!(text.matches("meshport_status_state{").count(), 5);
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("meshport_status_state{") && l.ends_with(" 1"))
                .count(),
            1
        );
        assert!(text.contains("meshport_status_items{state=\"overdue\"} 1"));
    }
}
