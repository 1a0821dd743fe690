//! Sizes, ages and times as operators read and type them, shared by the command line and the
//! console.

pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// RFC 3339, Unix seconds (10 digits or fewer) or milliseconds, or a duration meaning that
/// long ago.
pub fn parse_at(s: &str) -> Result<time::OffsetDateTime, String> {
    let now = time::OffsetDateTime::now_utc();
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = t.parse().map_err(|_| format!("`{s}` is not a time"))?;
        let nanos = if t.len() <= 10 {
            i128::from(n) * 1_000_000_000
        } else {
            i128::from(n) * 1_000_000
        };
        return time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map_err(|_| format!("`{s}` is not a time"));
    }
    if let Some(at) = crate::repo::manifest::parse_time(t) {
        return Ok(at);
    }
    if let Ok(d) = humantime::parse_duration(t.trim_end_matches(" ago")) {
        return time::Duration::try_from(d)
            .ok()
            .and_then(|d| now.checked_sub(d))
            .ok_or_else(|| format!("`{s}` reaches before any time"));
    }
    Err(format!(
        "`{s}` is not a time: give RFC 3339 (2026-12-02T14:05:00Z), Unix seconds, or how long ago (90m)"
    ))
}

/// How long ago an RFC 3339 time was, coarsely (`5m`, `3h`, `2d`).
pub fn age(rfc3339: &str, now: time::OffsetDateTime) -> String {
    match crate::repo::manifest::parse_time(rfc3339) {
        Some(t) => short_duration((now - t).try_into().unwrap_or_default()),
        None => "?".into(),
    }
}

/// A duration coarsely, as ages and RPOs are shown: `45s`, `12m`, `5h`, `3d`.
pub fn short_duration(d: std::time::Duration) -> String {
    match d.as_secs() {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// `s` cut to at most `max` characters, with `…` where it was cut.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max.saturating_sub(1)) {
        Some((i, _)) if s.chars().count() > max => format!("{}…", &s[..i]),
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_read_well() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
        let now = time::macros::datetime!(2026-11-23 12:00 UTC);
        assert_eq!(age("2026-11-23T11:59:00Z", now), "60s");
        assert_eq!(age("2026-11-23T09:00:00Z", now), "3h");
        assert_eq!(age("2026-11-20T12:00:00Z", now), "3d");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abcd", 4), "abcd");
        assert_eq!(truncate("ééééé", 3), "éé…");
    }
}
