//! Go-style durations (`24h0m0s`, `4m0s`, `1.5h`) as kubeadm's configuration writes and reads them.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration that (de)serialises in Go's `time.Duration` string form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    pub const fn from_secs(secs: u64) -> Self {
        GoDuration(Duration::from_secs(secs))
    }

    pub const fn hours(h: u64) -> Self {
        GoDuration(Duration::from_secs(h * 3600))
    }

    pub fn as_duration(&self) -> Duration {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: expected a Go duration such as \"24h0m0s\", \"90m\" or \"1.5h\"")]
pub struct ParseDurationError(pub String);

impl std::str::FromStr for GoDuration {
    type Err = ParseDurationError;

    /// Parses Go's syntax: an optional sign (only `-0`/`+` accepted here: durations are never
    /// negative in kubeadm's configuration), then one or more `<number><unit>` groups with units
    /// ns, us, µs, ms, s, m, h. `0` alone is allowed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseDurationError(s.to_string());
        let body = s.strip_prefix('+').unwrap_or(s);
        if body == "0" {
            return Ok(GoDuration(Duration::ZERO));
        }
        if body.is_empty() || body.starts_with('-') {
            return Err(err());
        }
        let mut total_nanos: u128 = 0;
        let mut rest = body;
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(err)?;
            if number_len == 0 {
                return Err(err());
            }
            let (number, after) = rest.split_at(number_len);
            let unit_len = after
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(after.len());
            let (unit, next) = after.split_at(unit_len);
            let unit_nanos: u128 = match unit {
                "ns" => 1,
                "us" | "µs" | "μs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60 * 1_000_000_000,
                "h" => 3600 * 1_000_000_000,
                _ => return Err(err()),
            };
            let (int_part, frac_part) = match number.split_once('.') {
                Some((i, f)) => (i, f),
                None => (number, ""),
            };
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(err());
            }
            let whole: u128 = if int_part.is_empty() {
                0
            } else {
                int_part.parse().map_err(|_| err())?
            };
            let mut value = whole.checked_mul(unit_nanos).ok_or_else(err)?;
            if !frac_part.is_empty() {
                if !frac_part.chars().all(|c| c.is_ascii_digit()) {
                    return Err(err());
                }
                let digits = &frac_part[..frac_part.len().min(18)];
                let frac: u128 = digits.parse().map_err(|_| err())?;
                value += frac * unit_nanos / 10u128.pow(digits.len() as u32);
            }
            total_nanos = total_nanos.checked_add(value).ok_or_else(err)?;
            rest = next;
        }
        let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| err())?;
        Ok(GoDuration(Duration::new(
            secs,
            (total_nanos % 1_000_000_000) as u32,
        )))
    }
}

impl fmt::Display for GoDuration {
    /// Formats as Go does: `0s`, `1.5s`, `500ms`, `4m0s`, `24h0m0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        if d < Duration::from_secs(1) {
            let nanos = d.subsec_nanos();
            return if nanos < 1_000 {
                write!(f, "{nanos}ns")
            } else if nanos < 1_000_000 {
                write!(f, "{}µs", trim_fraction(nanos as u64, 1_000))
            } else {
                write!(f, "{}ms", trim_fraction(nanos as u64, 1_000_000))
            };
        }
        let total = d.as_secs();
        let hours = total / 3600;
        let minutes = (total % 3600) / 60;
        let seconds = total % 60;
        let nanos = d.subsec_nanos() as u64;
        let secs_text = if nanos == 0 {
            seconds.to_string()
        } else {
            trim_fraction(seconds * 1_000_000_000 + nanos, 1_000_000_000)
        };
        if hours > 0 {
            write!(f, "{hours}h{minutes}m{secs_text}s")
        } else if minutes > 0 {
            write!(f, "{minutes}m{secs_text}s")
        } else {
            write!(f, "{secs_text}s")
        }
    }
}

/// `value / unit` written with the shortest exact decimal fraction.
fn trim_fraction(value: u64, unit: u64) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> GoDuration {
        s.parse().unwrap()
    }

    #[test]
    fn go_forms_round_trip() {
        for text in [
            "24h0m0s",
            "4m0s",
            "8760h0m0s",
            "87600h0m0s",
            "1m0s",
            "5s",
            "0s",
            "1.5s",
            "500ms",
        ] {
            assert_eq!(parse(text).to_string(), text);
        }
        assert_eq!(parse("90m").to_string(), "1h30m0s");
        assert_eq!(parse("1.5h").to_string(), "1h30m0s");
        assert_eq!(parse("0"), GoDuration::default());
        assert_eq!(parse("2h45m"), GoDuration::from_secs(2 * 3600 + 45 * 60));
    }

    #[test]
    fn rejects_garbage() {
        for text in ["", "24", "h", "1d", "-5m", "1.2.3h", "5 m", "abc", ".h"] {
            assert!(
                text.parse::<GoDuration>().is_err(),
                "{text:?} should be rejected"
            );
        }
    }
}
