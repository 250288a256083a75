//! The expiry timeline, an SVG picture rendered on the server: one row per item when there are
//! few (a bar up to its renewal or due date, a tick at its expiry), otherwise the count of items
//! per day stacked by state. Everything past its date sits at the left edge. Every name is
//! escaped, since certificate names come from the clusters.

use std::fmt::Write;

use app::rotation::RotationState;
use app::status_report::{StatusItem, utc};

const WIDTH: i64 = 900;
const LABEL: i64 = 260;
const ROW: i64 = 22;
const TOP: i64 = 12;
/// Room right of the plot, so the last date label fits.
const RIGHT: i64 = 40;
/// Most items drawn as rows; more are counted per day.
const MAX_ROWS: usize = 30;
const CHART_HEIGHT: i64 = 160;

/// The timeline of `items` for `days` days from `now` (Unix seconds).
pub fn render(items: &[StatusItem], now: i64, days: i64) -> String {
    let end = now + days * 86_400;
    let mut shown: Vec<&StatusItem> =
        items.iter().filter(|i| i.next_date().is_some_and(|d| d <= end)).collect();
    shown.sort_by_key(|i| i.next_date());
    let body_height = if shown.is_empty() {
        ROW
    } else if shown.len() <= MAX_ROWS {
        ROW * shown.len() as i64
    } else {
        CHART_HEIGHT
    };
    let height = TOP + body_height + 64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" aria-labelledby="timeline-title" font-family="ui-sans-serif, system-ui, sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r#"<title id="timeline-title">{} items renew, are due or expire by {} UTC</title>"#,
        shown.len(),
        utc(end)
    );
    let x =
        |t: i64| LABEL + (t.clamp(now, end) - now) * (WIDTH - LABEL - RIGHT) / (end - now).max(1);
    // The axis: a tick every 15 days.
    let axis_y = TOP + body_height + 8;
    let _ = write!(
        svg,
        r##"<line x1="{LABEL}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#94a3b8"/>"##,
        WIDTH - RIGHT
    );
    for day in (0..=days).step_by(15) {
        let tx = x(now + day * 86_400);
        let date = utc(now + day * 86_400);
        let _ = write!(
            svg,
            r##"<line x1="{tx}" y1="{TOP}" x2="{tx}" y2="{}" stroke="#e2e8f0"/><text x="{tx}" y="{}" text-anchor="middle" fill="#475569">{}</text>"##,
            axis_y + 4,
            axis_y + 18,
            escape(date.get(..10).unwrap_or(&date)),
        );
    }
    if shown.is_empty() {
        let _ = write!(
            svg,
            r##"<text x="{LABEL}" y="{}" fill="#475569">Nothing renews or expires in the next {days} days.</text>"##,
            TOP + 15
        );
    } else if shown.len() <= MAX_ROWS {
        for (row, item) in shown.iter().enumerate() {
            let y = TOP + row as i64 * ROW;
            let state = item.judgement.state;
            let date = item.next_date().unwrap_or(now);
            let label = format!("{} {}/{}", item.kind.label(), item.namespace, item.name);
            let _ = write!(
                svg,
                r##"<g data-key="{}" data-state="{}"><title>{}: {} ({})</title><text x="4" y="{}" fill="#0f172a">{}</text><rect x="{LABEL}" y="{}" width="{}" height="8" rx="2" fill="{}" opacity="0.35"/><circle cx="{}" cy="{}" r="5" fill="{}"/>"##,
                escape(&item.key()),
                state.as_str(),
                escape(&label),
                state.label(),
                escape(&item.judgement.reason),
                y + 14,
                escape(&shorten(&label, 40)),
                y + 6,
                (x(date) - LABEL).max(1),
                colour(state),
                x(date),
                y + 10,
                colour(state),
            );
            if let (Some(_), Some(expiry)) = (item.renews_at, item.expires_at)
                && expiry <= end
            {
                let ex = x(expiry);
                let _ = write!(
                    svg,
                    r##"<line x1="{ex}" y1="{}" x2="{ex}" y2="{}" stroke="#0f172a" stroke-width="2"/>"##,
                    y + 3,
                    y + 17
                );
            }
            svg.push_str("</g>");
        }
    } else {
        daily_counts(&mut svg, &shown, now, days, &x);
    }
    legend(&mut svg, height - 12);
    svg.push_str("</svg>");
    svg
}

/// Items per day, stacked by state, worst at the bottom.
fn daily_counts(
    svg: &mut String,
    items: &[&StatusItem],
    now: i64,
    days: i64,
    x: &dyn Fn(i64) -> i64,
) {
    let mut counts = vec![[0_i64; 5]; days as usize + 1];
    for item in items {
        let day = ((item.next_date().unwrap_or(now) - now).max(0) / 86_400).min(days) as usize;
        counts[day][state_index(item.judgement.state)] += 1;
    }
    let max = counts.iter().map(|c| c.iter().sum::<i64>()).max().unwrap_or(1).max(1);
    let bar = ((x(now + 86_400) - x(now)) - 1).max(1);
    let _ = write!(
        svg,
        r##"<text x="4" y="{}" fill="#0f172a">{} items per day</text><text x="4" y="{}" fill="#475569">(most on one day: {max})</text>"##,
        TOP + 14,
        items.len(),
        TOP + 30
    );
    for (day, count) in counts.iter().enumerate() {
        let mut y = TOP + CHART_HEIGHT;
        for state in RotationState::ALL.into_iter().rev() {
            let n = count[state_index(state)];
            if n == 0 {
                continue;
            }
            let h = (n * CHART_HEIGHT / max).max(1);
            y -= h;
            let _ = write!(
                svg,
                r##"<rect x="{}" y="{y}" width="{bar}" height="{h}" fill="{}" data-state="{}"><title>{}: {n} {}</title></rect>"##,
                x(now + day as i64 * 86_400),
                colour(state),
                state.as_str(),
                escape(&utc(now + day as i64 * 86_400)[..10]),
                state.label(),
            );
        }
    }
}

fn legend(svg: &mut String, y: i64) {
    let mut lx = LABEL;
    for state in RotationState::ALL {
        let _ = write!(
            svg,
            r##"<rect x="{lx}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{y}" fill="#334155">{}</text>"##,
            y - 9,
            colour(state),
            lx + 14,
            state.label()
        );
        lx += 100;
    }
}

fn state_index(state: RotationState) -> usize {
    RotationState::ALL.iter().position(|s| *s == state).unwrap_or(0)
}

fn colour(state: RotationState) -> &'static str {
    match state {
        RotationState::Ok => "#10b981",
        RotationState::DueSoon => "#f59e0b",
        RotationState::Overdue => "#f97316",
        RotationState::Failing => "#dc2626",
        RotationState::Expired => "#7f1d1d",
    }
}

/// At most `max` characters, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max - 1).collect();
    short.push('…');
    short
}

/// Escapes text for SVG content and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c if c.is_control() => escaped.push(' '),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::rotation::Judgement;
    use app::status_report::ItemKind;

    fn item(name: &str, days: i64, state: RotationState) -> StatusItem {
        StatusItem {
            kind: ItemKind::Certificate,
            source: "prod".into(),
            namespace: "prod-app".into(),
            name: name.into(),
            service: None,
            expires_at: Some(days * 86_400),
            renews_at: None,
            judgement: Judgement::new(state, "why"),
        }
    }

    #[test]
    fn hostile_names_are_escaped_and_far_items_left_out() {
        let items = [
            item("<script>alert(1)</script>", 3, RotationState::DueSoon),
            item("later", 200, RotationState::Ok),
        ];
        let svg = render(&items, 0, 90);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(!svg.contains("later"));
        assert_eq!(svg.matches("<g data-key=").count(), 1);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn many_items_are_counted_per_day() {
        let items: Vec<StatusItem> =
            (0..1000).map(|n| item(&format!("c{n}"), n % 120, RotationState::Ok)).collect();
        let svg = render(&items, 0, 90);
        assert_eq!(svg.matches("<g data-key=").count(), 0);
        assert!(svg.contains("items per day"));
        // 91 days (0..=90) hold items; the rest are beyond the window.
        assert_eq!(svg.matches(r#"data-state="ok"><title>"#).count(), 91);
    }
}
