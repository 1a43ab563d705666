//! `--baseline-end`: an RFC 3339 time or a duration ago (`15m`), as Unix nanoseconds.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::analysis_bridge::wallclock;

/// Parses `2026-11-30T06:00:00Z` (any RFC 3339 offset) or `15m` / `1h30m` / `90s` ago.
pub fn parse_baseline_end(s: &str) -> Result<u64, String> {
    if let Some(ns) = wallclock::parse_rfc3339(s) {
        return Ok(ns);
    }
    let ago = wallclock::parse_duration_ns(s).ok_or_else(|| {
        format!("{s:?} is neither an RFC 3339 time (2026-11-30T06:00:00Z) nor a duration ago (15m)")
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    Ok(now.saturating_sub(ago))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_ago() {
        assert_eq!(
            parse_baseline_end("2023-11-14T22:13:20Z"),
            Ok(1_700_000_000_000_000_000)
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let t = parse_baseline_end("15m").unwrap();
        let ago = now - t;
        assert!((899_000_000_000..=901_000_000_000).contains(&ago), "{ago}");
        assert!(parse_baseline_end("yesterday").is_err());
    }
}
