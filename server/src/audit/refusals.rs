//! Refused privileged attempts (a forbidden decision, a forbidden API call, a webhook with a bad
//! signature) become `access_refused` events, through the same chain as every change. So that
//! a caller cannot flood the chain, each actor gets at most `per_minute` such events a minute;
//! the refusals beyond are counted and summed up in one `access_refusals_suppressed` event
//! when the actor's next minute starts (or when [`Refusals::flush`] finds the minute over).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Action, Actor, NewEvent, Outcome, Target, record_alone};
use crate::store::Store;

const MINUTE: Duration = Duration::from_secs(60);

/// One actor's current minute.
#[derive(Clone, Copy, Debug)]
struct Window {
    started: Instant,
    recorded: u32,
    suppressed: u64,
}

/// What to do with one refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Refusals suppressed in the actor's previous minute, to be summed up first (0: none).
    pub summary: u64,
    /// Whether this refusal is recorded.
    pub record: bool,
}

/// The per-actor limit, in memory (per process: each replica allows its own share).
#[derive(Debug)]
pub struct Limiter {
    per_minute: u32,
    windows: HashMap<String, Window>,
}

impl Limiter {
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, windows: HashMap::new() }
    }

    /// Counts a refusal of `actor` at `now`.
    pub fn refuse(&mut self, actor: &str, now: Instant) -> Verdict {
        let window = self.windows.entry(actor.to_owned()).or_insert(Window {
            started: now,
            recorded: 0,
            suppressed: 0,
        });
        let mut summary = 0;
        if now.duration_since(window.started) >= MINUTE {
            summary = window.suppressed;
            *window = Window { started: now, recorded: 0, suppressed: 0 };
        }
        let record = window.recorded < self.per_minute;
        if record {
            window.recorded += 1;
        } else {
            window.suppressed += 1;
        }
        Verdict { summary, record }
    }

    /// Takes the suppressed counts of minutes over at `now` (all, with `force`), forgetting
    /// those actors.
    pub fn expired(&mut self, now: Instant, force: bool) -> Vec<(String, u64)> {
        let mut over = Vec::new();
        self.windows.retain(|actor, window| {
            let done = force || now.duration_since(window.started) >= MINUTE;
            if done && window.suppressed > 0 {
                over.push((actor.clone(), window.suppressed));
            }
            !done
        });
        over
    }
}

/// What was refused.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub actor: Actor,
    /// The route or thing acted on, such as `POST /api/v1/requests/{id}/approve`.
    pub target: Target,
    /// Why, for the auditor (never a secret).
    pub reason: String,
    pub details: serde_json::Value,
}

/// Records refusals within the per-actor limit.
pub struct Refusals {
    store: Store,
    limiter: Mutex<Limiter>,
    /// The actors whose suppressed refusals are summed up, by key, with how they were named.
    actors: Mutex<HashMap<String, Actor>>,
}

impl Refusals {
    pub fn new(store: Store, per_minute: u32) -> Self {
        Self { store, limiter: Mutex::new(Limiter::new(per_minute)), actors: Mutex::default() }
    }

    /// Records `refusal` unless its actor is over the limit. A failure to record is logged: the
    /// refusal itself stands either way.
    pub async fn record(&self, refusal: Refusal) {
        let key = actor_key(&refusal.actor);
        let verdict =
            self.limiter.lock().unwrap_or_else(|e| e.into_inner()).refuse(&key, Instant::now());
        if verdict.summary > 0 {
            self.actors.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
            self.summarise(&refusal.actor, verdict.summary).await;
        }
        if !verdict.record {
            self.actors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_insert_with(|| refusal.actor.clone());
            return;
        }
        let mut details = json!({ "reason": refusal.reason });
        if let (Some(all), Some(more)) = (details.as_object_mut(), refusal.details.as_object()) {
            all.extend(more.clone());
        }
        let event = NewEvent {
            actor: refusal.actor,
            action: Action::AccessRefused,
            target: refusal.target,
            request_id: None,
            details,
            outcome: Outcome::Failure,
        };
        if let Err(error) = record_alone(&self.store, event).await {
            tracing::error!(%error, "could not record a refused attempt");
        }
    }

    /// Sums up the refusals suppressed in minutes that are over (every minute, with `force`:
    /// at shutdown, or in a test).
    pub async fn flush(&self, force: bool) {
        let over =
            self.limiter.lock().unwrap_or_else(|e| e.into_inner()).expired(Instant::now(), force);
        for (key, count) in over {
            let actor = self.actors.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
            if let Some(actor) = actor {
                self.summarise(&actor, count).await;
            }
        }
    }

    async fn summarise(&self, actor: &Actor, count: u64) {
        let event = NewEvent {
            actor: actor.clone(),
            action: Action::AccessRefusalsSuppressed,
            target: Target::new("actor", "", &actor.subject),
            request_id: None,
            details: json!({
                "suppressed": count,
                "message": format!("{count} further refusals suppressed"),
            }),
            outcome: Outcome::Failure,
        };
        if let Err(error) = record_alone(&self.store, event).await {
            tracing::error!(%error, "could not record suppressed refusals");
        }
    }

    /// Sums up finished minutes in the background for as long as the process runs.
    pub fn spawn_flush(self: &std::sync::Arc<Self>) {
        let refusals = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(15));
            loop {
                ticker.tick().await;
                refusals.flush(false).await;
            }
        });
    }
}

/// One key per person (their user id), or per unauthenticated source (a forge's webhooks).
fn actor_key(actor: &Actor) -> String {
    actor.user_id.clone().unwrap_or_else(|| format!("subject:{}", actor.subject))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_gets_at_most_n_a_minute_then_one_summary() {
        let mut limiter = Limiter::new(3);
        let start = Instant::now();
        let verdicts: Vec<bool> = (0..1000).map(|_| limiter.refuse("dana", start).record).collect();
        assert_eq!(verdicts.iter().filter(|r| **r).count(), 3);
        assert!(limiter.refuse("alex", start).record, "each actor has a limit of their own");
        let next = limiter.refuse("dana", start + MINUTE);
        assert_eq!(next, Verdict { summary: 997, record: true }, "the next minute sums up");
        limiter.refuse("dana", start + MINUTE);
        limiter.refuse("dana", start + MINUTE);
        assert!(!limiter.refuse("dana", start + MINUTE).record);
        assert_eq!(limiter.expired(start + MINUTE, false), vec![]);
        assert_eq!(limiter.expired(start + 2 * MINUTE, false), vec![("dana".to_owned(), 1)]);
        assert_eq!(limiter.expired(start + 2 * MINUTE, true), vec![], "alex had none suppressed");
    }
}
