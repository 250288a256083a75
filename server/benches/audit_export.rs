//! Audit export throughput and memory: fills a SQLite database with a valid chain of
//! 1,000,000 events (`MESHPORT_BENCH_EVENTS` overrides), then exports it in each format to a
//! counting sink and prints rows per second and the peak resident memory of the export alone,
//! then the OCSF figures against the goals (at least 200k events/s, under 64 MB).
//! Figures for the issue notes; it asserts nothing. Run: `cargo bench -p server --bench audit_export`.

use std::time::Instant;

use meshport_server::audit::export::{self, Format, Period};
use meshport_server::audit::verify;
use meshport_server::store::Store;

mod audit_chain;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: i64 = std::env::var("MESHPORT_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let folder = tempfile::tempdir()?;
    let url = format!("sqlite://{}", folder.path().join("bench.db").display());
    let store = Store::connect(&url.into()).await?;
    store.migrate().await?;

    let started = Instant::now();
    audit_chain::fill(&store, events).await?;
    eprintln!("filled {events} events in {:.1} s", started.elapsed().as_secs_f64());

    let (mut csv_seconds, mut ocsf) = (None, None);
    println!("| what | events | seconds | events/s | output MB | peak RSS of the step (MB) |");
    println!("|---|---|---|---|---|---|");
    for (name, format) in [
        ("export csv", Format::Csv),
        ("export csv-excel", Format::CsvExcel),
        ("export jsonl", Format::Jsonl),
        ("export ocsf", Format::Ocsf),
    ] {
        reset_peak_rss();
        let started = Instant::now();
        let mut chunks = export::stream(store.clone(), Period::default(), format);
        let mut bytes = 0usize;
        while let Some(chunk) = chunks.recv().await {
            bytes += chunk?.len();
        }
        let seconds = started.elapsed().as_secs_f64();
        if format == Format::Csv {
            csv_seconds = Some(seconds);
        }
        report(name, events, seconds, bytes);
        if format == Format::Ocsf {
            ocsf = Some((events as f64 / seconds, peak_rss_kb() as f64 / 1024.0));
        }
    }
    // The anchor: the sqlite3 shell writing the same rows as CSV, straight from the table.
    let started = Instant::now();
    let dump = std::process::Command::new("sqlite3")
        .args(["-csv", "-header"])
        .arg(folder.path().join("bench.db"))
        .arg("SELECT * FROM audit_events ORDER BY seq")
        .stderr(std::process::Stdio::inherit())
        .output();
    let anchor = match dump {
        Ok(output) if output.status.success() => {
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "| sqlite3 -csv of the table (anchor) | {events} | {seconds:.2} | {:.0} | {:.1} | – |",
                events as f64 / seconds,
                output.stdout.len() as f64 / 1e6
            );
            Some(seconds)
        }
        _ => {
            println!(
                "| sqlite3 -csv (anchor) | not run: sqlite3 is missing (scripts/setup.sh installs it) | | | | |"
            );
            None
        }
    };
    reset_peak_rss();
    let started = Instant::now();
    let verification = verify(&store, &[]).await?;
    assert!(verification.first_broken.is_none(), "the generated chain verifies");
    report("verify", events, started.elapsed().as_secs_f64(), 0);
    if let Some((rate, rss)) = ocsf {
        println!(
            "ocsf export: {rate:.0} events/s (goal at least 200000), peak RSS {rss:.1} MB (goal under 64)"
        );
    }
    if let (Some(anchor), Some(csv)) = (anchor, csv_seconds) {
        println!(
            "csv export: {:.2}x the time of sqlite3's own CSV dump of the table (streamed, with the chain's columns and escaping)",
            csv / anchor
        );
    }
    Ok(())
}

fn report(name: &str, events: i64, seconds: f64, bytes: usize) {
    println!(
        "| {name} | {events} | {seconds:.2} | {:.0} | {:.1} | {:.1} |",
        events as f64 / seconds,
        bytes as f64 / 1e6,
        peak_rss_kb() as f64 / 1024.0
    );
}

/// Resets the kernel's peak-RSS mark of this process (Linux: `5` into clear_refs).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
