//! The `/audit` page's cost over a long chain: fills a SQLite database with a valid chain of
//! 100,000 events (`MESHPORT_BENCH_EVENTS` overrides), then times the page's server function
//! (`AuditReader::overview`: the chain's verification and the newest events) on the first
//! load (a full verification), on later loads (only events after the verified prefix), and
//! after 100 new events. Figures for the issue notes; it asserts nothing.
//! Run: `cargo bench -p server --bench audit_page`.

use std::time::Instant;

use app::audit::ssr::AuditService as _;
use meshport_server::audit::{self, Action, Actor, AuditReader, NewEvent, Outcome, Target};
use meshport_server::store::Store;

mod audit_chain;

const LOADS: u32 = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: i64 =
        std::env::var("MESHPORT_BENCH_EVENTS").ok().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let folder = tempfile::tempdir()?;
    let url = format!("sqlite://{}", folder.path().join("bench.db").display());
    let store = Store::connect(&url.into()).await?;
    store.migrate().await?;
    let started = Instant::now();
    audit_chain::fill(&store, events).await?;
    eprintln!("filled {events} events in {:.1} s", started.elapsed().as_secs_f64());

    let reader = AuditReader::new(store.clone(), Vec::new(), None);
    println!("| /audit load | events | milliseconds | events recomputed |");
    println!("|---|---|---|---|");
    let load = |what: &'static str| {
        let reader = &reader;
        async move {
            let started = Instant::now();
            let summary = reader.overview().await.expect("the page's data");
            let millis = started.elapsed().as_secs_f64() * 1000.0;
            assert!(summary.broken.is_none(), "the generated chain verifies");
            (what, summary.events, millis)
        }
    };
    let (what, total, millis) = load("first (full verification)").await;
    println!("| {what} | {total} | {millis:.1} | {total} |");
    let mut worst: f64 = 0.0;
    let mut sum = 0.0;
    for _ in 0..LOADS {
        let (_, _, millis) = load("later").await;
        worst = worst.max(millis);
        sum += millis;
    }
    println!(
        "| later, mean of {LOADS} (max {worst:.1}) | {total} | {:.1} | 0 |",
        sum / f64::from(LOADS)
    );
    for step in 0..100 {
        let event = NewEvent {
            actor: Actor::system(),
            action: Action::ProvisioningStep,
            target: Target::new("service", "prod-app", "cart"),
            request_id: None,
            details: serde_json::json!({ "step": step }),
            outcome: Outcome::Success,
        };
        audit::record_alone(&store, event).await?;
    }
    let (what, total, millis) = load("after 100 new events").await;
    println!("| {what} | {total} | {millis:.1} | 100 |");
    println!(
        "/audit after the first verification: {:.1} ms on average over {total} events (goal: well under a second)",
        sum / f64::from(LOADS)
    );
    Ok(())
}
