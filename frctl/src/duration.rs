//! Human durations: `90s`, `30m`, `1h30m`, `2d` (units d, h, m, s; a bare number is seconds),
//! and their compact display (`1h30m`).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Parses `1h30m`-style text; the error says what is accepted.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || format!("`{text}` is not a duration; use e.g. 90s, 30m, 1h30m, 2d");
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(invalid());
    }
    if let Ok(seconds) = trimmed.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for character in trimmed.chars() {
        if character.is_ascii_digit() {
            digits.push(character);
            continue;
        }
        let unit_seconds = match character {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(invalid()),
        };
        let amount: u64 = digits.parse().map_err(|_| invalid())?;
        digits.clear();
        total = amount
            .checked_mul(unit_seconds)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(invalid)?;
    }
    if !digits.is_empty() {
        // `1h30` is ambiguous: refuse rather than guess minutes or seconds.
        return Err(invalid());
    }
    Ok(Duration::from_secs(total))
}

/// `--since`: a duration ago (`24h`) or an RFC 3339 time.
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(at.with_timezone(&Utc));
    }
    let ago = parse(text).map_err(|_| format!("`{text}` is neither a duration (24h, 7d) nor an RFC 3339 time"))?;
    let ago = chrono::Duration::from_std(ago).map_err(|_| format!("`{text}` is too far back"))?;
    Utc::now()
        .checked_sub_signed(ago)
        .ok_or_else(|| format!("`{text}` is too far back"))
}

/// Compact display: `2d3h`, `1h30m`, `45s` (two largest units).
pub fn format(value: Duration) -> String {
    let seconds = value.as_secs();
    let units = [(86_400, 'd'), (3_600, 'h'), (60, 'm'), (1, 's')];
    let mut remaining = seconds;
    let mut parts = Vec::new();
    for (size, unit) in units {
        if remaining >= size {
            parts.push(format!("{}{unit}", remaining / size));
            remaining %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every documented form parses to the right number of seconds.
    #[test]
    fn documented_forms_parse() {
        assert_eq!(parse("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse("45").unwrap(), Duration::from_secs(45));
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
    }

    /// Garbage, dangling numbers and overflow are refused with the accepted forms.
    #[test]
    fn bad_forms_are_refused() {
        for text in ["", "m", "1h30", "10x", "-5m", "1.5h", "99999999999999999999d"] {
            let error = parse(text).unwrap_err();
            assert!(error.contains("90s"), "{text}: {error}");
        }
    }

    /// `--since` takes a duration ago or an absolute time.
    #[test]
    fn since_accepts_ago_and_rfc3339() {
        let ago = parse_since("1h").unwrap();
        let expected = Utc::now() - chrono::Duration::hours(1);
        assert!((ago - expected).num_seconds().abs() < 5);
        let absolute = parse_since("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(absolute.to_rfc3339(), "2026-01-02T03:04:05+00:00");
        assert!(parse_since("yesterday").is_err());
    }

    /// Display keeps the two largest units.
    #[test]
    fn format_is_compact() {
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::from_secs(45)), "45s");
        assert_eq!(format(Duration::from_secs(90_061)), "1d1h");
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
