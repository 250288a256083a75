//! meshport's own Prometheus metrics: HTTP requests, provisioning steps and how long due jobs
//! wait for an engine, as histograms kept in this process. `/metrics` adds them to the status
//! report's gauges and the job queue's depth, read from the database at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Latency buckets in seconds, from a fast page to a slow Vault or forge call.
const SECONDS: &[f64] =
    &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A histogram per label set.
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Vec<String>, Series>>,
}

#[derive(Default)]
struct Series {
    /// Observations per bucket (not cumulative; summed when rendered).
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    const fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Self { name, help, labels, series: Mutex::new(BTreeMap::new()) }
    }

    /// Records `value` for the label values, in the order of the histogram's label names.
    pub fn observe(&self, values: &[&str], value: Duration) {
        debug_assert_eq!(values.len(), self.labels.len());
        let seconds = value.as_secs_f64();
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let entry = series.entry(values.iter().map(|v| (*v).to_owned()).collect()).or_default();
        entry.buckets.resize(SECONDS.len(), 0);
        if let Some(bucket) = SECONDS.iter().position(|le| seconds <= *le) {
            entry.buckets[bucket] += 1;
        }
        entry.count += 1;
        entry.sum += seconds;
    }

    /// The histogram in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        family(out, self.name, self.help, "histogram");
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        for (values, series) in series.iter() {
            let labels: Vec<String> = self
                .labels
                .iter()
                .zip(values)
                .map(|(name, value)| format!("{name}=\"{}\"", escape(value)))
                .collect();
            let labels = labels.join(",");
            let separator = if labels.is_empty() { "" } else { "," };
            let mut cumulative = 0;
            for (le, count) in SECONDS.iter().zip(&series.buckets) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "{}_bucket{{{labels}{separator}le=\"{le}\"}} {cumulative}",
                    self.name
                );
            }
            let _ = writeln!(
                out,
                "{}_bucket{{{labels}{separator}le=\"+Inf\"}} {}",
                self.name, series.count
            );
            let _ = writeln!(out, "{}_sum{{{labels}}} {}", self.name, series.sum);
            let _ = writeln!(out, "{}_count{{{labels}}} {}", self.name, series.count);
        }
    }
}

/// The process's metrics.
pub struct Metrics {
    /// HTTP requests by method, route pattern (not the path: ids would explode the series) and
    /// status.
    pub http_requests: Histogram,
    /// Provisioning steps by job kind, step and outcome (`ok`, `waiting`, `retryable`, `failed`).
    pub job_steps: Histogram,
    /// Time from a job being due to an engine claiming it.
    pub job_wait: Histogram,
}

/// The one set of metrics of this process.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        http_requests: Histogram::new(
            "meshport_http_request_duration_seconds",
            "HTTP requests served, by method, route and status.",
            &["method", "route", "status"],
        ),
        job_steps: Histogram::new(
            "meshport_job_step_duration_seconds",
            "Provisioning steps run, by job kind, step and outcome.",
            &["kind", "step", "outcome"],
        ),
        job_wait: Histogram::new(
            "meshport_job_queue_wait_seconds",
            "How long due jobs waited before an engine claimed them.",
            &["kind"],
        ),
    })
}

/// Every histogram in Prometheus' text format.
pub fn render(out: &mut String) {
    let metrics = metrics();
    metrics.http_requests.render(out);
    metrics.job_steps.render(out);
    metrics.job_wait.render(out);
}

/// The `# HELP` and `# TYPE` lines that open a metric family.
pub fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a label value: backslash, double quote and line feed.
pub fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_label_values_escaped() {
        let histogram = Histogram::new("t_seconds", "Test.", &["route"]);
        histogram.observe(&["/a\"b"], Duration::from_millis(3));
        histogram.observe(&["/a\"b"], Duration::from_millis(40));
        histogram.observe(&["/a\"b"], Duration::from_secs(60));
        let mut out = String::new();
        histogram.render(&mut out);
        assert!(out.contains(r#"t_seconds_bucket{route="/a\"b",le="0.005"} 1"#), "{out}");
        assert!(out.contains(r#"t_seconds_bucket{route="/a\"b",le="0.05"} 2"#), "{out}");
        assert!(out.contains(r#"t_seconds_bucket{route="/a\"b",le="30"} 2"#), "{out}");
        assert!(out.contains(r#"t_seconds_bucket{route="/a\"b",le="+Inf"} 3"#), "{out}");
        assert!(out.contains(r#"t_seconds_count{route="/a\"b"} 3"#), "{out}");
    }
}
