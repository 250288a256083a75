//! The `[rotation]` settings: when meshport rotates secrets on its own, and how a new value
//! reaches the pods.

use chrono::{DateTime, NaiveTime, Utc};
use serde::Deserialize;

/// Rotation of services' secrets.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RotationConfig {
    /// Minutes between looks for due secrets of services with automatic rotation; 0 turns
    /// scheduled rotation off. Default 15.
    pub schedule_minutes: u64,
    /// UTC hours when scheduled rotations may run, `HH:MM-HH:MM` (may wrap midnight, e.g.
    /// `22:00-04:00`). Default: empty, any time.
    pub maintenance_window: String,
    /// Minutes rotations of one service with `restart` delivery are gathered into one pull
    /// request. Default 10.
    pub restart_window_minutes: u64,
    /// How often the agent of a service with `reload` delivery re-renders static secrets
    /// (the injector's `template-static-secret-render-interval`): a number and `s`, `m` or
    /// `h`. Default `60s`.
    pub render_interval: String,
}

impl Default for RotationConfig {
    fn default() -> Self {
        Self {
            schedule_minutes: 15,
            maintenance_window: String::new(),
            restart_window_minutes: 10,
            render_interval: "60s".to_owned(),
        }
    }
}

impl RotationConfig {
    /// The first setting that cannot work, as (dotted key, rule).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        let interval = self.render_interval.strip_suffix(['s', 'm', 'h']);
        if !interval.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) {
            return Some((
                "rotation.render_interval",
                "must be a whole number followed by s, m or h, such as `60s`",
            ));
        }
        if !self.maintenance_window.trim().is_empty() && self.window().is_none() {
            return Some((
                "rotation.maintenance_window",
                "must be two UTC times `HH:MM-HH:MM`, such as `22:00-04:00`, or empty for any time",
            ));
        }
        None
    }

    /// The maintenance window's start and end; `None` when empty or malformed.
    fn window(&self) -> Option<(NaiveTime, NaiveTime)> {
        let (start, end) = self.maintenance_window.trim().split_once('-')?;
        let time = |text: &str| NaiveTime::parse_from_str(text.trim(), "%H:%M").ok();
        Some((time(start)?, time(end)?))
    }

    /// Whether scheduled rotations may run at `now`.
    pub fn in_window(&self, now: DateTime<Utc>) -> bool {
        let Some((start, end)) = self.window() else { return true };
        let time = now.time();
        if start <= end { start <= time && time < end } else { time >= start || time < end }
    }
}

impl RotationConfig {
    /// The first moment at or after `at` inside the maintenance window: when a rotation due
    /// at `at` runs at the earliest.
    pub fn next_in_window(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let Some((start, _)) = self.window() else { return at };
        if self.in_window(at) {
            return at;
        }
        let today = at.date_naive().and_time(start).and_utc();
        if today > at { today } else { today + chrono::TimeDelta::days(1) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(time: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-12-07T{time}:00Z")).unwrap().to_utc()
    }

    #[test]
    fn the_maintenance_window_may_wrap_midnight_and_bad_settings_are_named() {
        let config = |window: &str| RotationConfig {
            maintenance_window: window.to_owned(),
            ..RotationConfig::default()
        };
        assert!(config("").in_window(at("13:00")));
        let night = config("22:00-04:00");
        assert!(night.in_window(at("23:30")) && night.in_window(at("03:59")));
        assert!(!night.in_window(at("04:00")) && !night.in_window(at("12:00")));
        let day = config("09:00-17:00");
        assert!(day.in_window(at("09:00")) && !day.in_window(at("17:00")));
        assert_eq!(config("9-5").problem().map(|p| p.0), Some("rotation.maintenance_window"));
        let interval = RotationConfig { render_interval: "1 minute".into(), ..config("") };
        assert_eq!(interval.problem().map(|p| p.0), Some("rotation.render_interval"));
        assert_eq!(config("").problem(), None);
        assert_eq!(night.next_in_window(at("12:00")), at("22:00"));
        assert_eq!(night.next_in_window(at("23:00")), at("23:00"));
        assert_eq!(day.next_in_window(at("18:00")), at("09:00") + chrono::TimeDelta::days(1));
        assert_eq!(config("").next_in_window(at("18:00")), at("18:00"));
    }
}
