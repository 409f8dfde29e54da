//! Timestamps in the forms the Kubernetes API uses (RFC 3339 seconds, MicroTime) and in log lines.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
pub use time::{Duration, OffsetDateTime};

/// `metav1.Time`: RFC 3339 with second precision, UTC (`2026-11-23T17:30:00Z`).
pub fn now() -> String {
    format_seconds(OffsetDateTime::now_utc())
}

pub fn format_seconds(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

/// `metav1.Time` `seconds` from now.
pub fn after_seconds(seconds: i64) -> String {
    format_seconds(OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
}

/// `metav1.MicroTime`: microsecond precision (`2026-11-23T17:30:00.123456Z`).
pub fn now_micro() -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    OffsetDateTime::now_utc().format(&fmt).unwrap_or_default()
}

pub fn parse(value: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(value, &Rfc3339).ok()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Human age as kubectl prints it (`45s`, `12m`, `3h`, `2d`).
pub fn age(since: &str) -> String {
    let Some(then) = parse(since) else {
        return "<unknown>".into();
    };
    let secs = (OffsetDateTime::now_utc() - then).whole_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 3 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The prefix of a log line.
pub fn log_stamp() -> String {
    let fmt = format_description!("I[month][day] [hour]:[minute]:[second].[subsecond digits:6]");
    OffsetDateTime::now_utc().format(&fmt).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip() {
        let t = now();
        assert!(t.ends_with('Z') && t.len() == 20, "{t}");
        assert!(parse(&t).is_some());
        assert!(parse(&now_micro()).is_some());
        assert!(matches!(age(&t).as_str(), "0s" | "1s" | "2s"));
    }
}
