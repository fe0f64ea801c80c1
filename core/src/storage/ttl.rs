//! OpenMLDB's four TTL kinds: when a row of an index has expired, how a TTL prints, how the CLI spells one.
//!
//! A TTL belongs to an index. Its absolute part is in minutes (0: never expires by time), its latest part is a
//! count of newest rows kept per key (0: keeps all). Expiry needs the row's rank among the rows of its key in
//! that index, newest first, because LATEST is a count, not a time.

use std::fmt;
use std::str::FromStr;

use crate::proto::tablet::{TtlSt, TtlType};

/// Largest absolute TTL OpenMLDB accepts, in minutes (30 years; its `absolute_ttl_max`).
pub const ABSOLUTE_TTL_MAX_MIN: u64 = 15_768_000;

/// Largest latest TTL OpenMLDB accepts (its `latest_ttl_max`).
pub const LATEST_TTL_MAX: u64 = 1000;

const MS_PER_MIN: u64 = 60_000;

/// Whether a row with timestamp `ts_ms` at position `rank` among its key's rows (0 = newest) has expired at
/// `now_ms` under `ttl`. A zero limit disables its condition; an unknown TTL kind reads as UNSPECIFIED, which
/// behaves like ABSOLUTE (OpenMLDB's default kind).
pub fn expired(ttl: &TtlSt, ts_ms: u64, now_ms: u64, rank: usize) -> bool {
    let by_time = abs_expired(ttl.abs_ttl, ts_ms, now_ms);
    let by_count = ttl.lat_ttl > 0 && rank as u64 >= ttl.lat_ttl;
    match ttl.ttl_type() {
        TtlType::Unspecified | TtlType::AbsoluteTime => by_time,
        TtlType::LatestTime => by_count,
        TtlType::AbsAndLat => by_time && by_count,
        TtlType::AbsOrLat => by_time || by_count,
    }
}

/// The absolute condition: older than `abs_min` minutes before now. A limit reaching back before the epoch
/// (or overflowing) expires nothing.
fn abs_expired(abs_min: u64, ts_ms: u64, now_ms: u64) -> bool {
    if abs_min == 0 {
        return false;
    }
    match abs_min.checked_mul(MS_PER_MIN).and_then(|span| now_ms.checked_sub(span)) {
        Some(cutoff) => ts_ms < cutoff,
        None => false,
    }
}

/// ABSOLUTE: rows older than `minutes` expire (0: never).
pub fn absolute(minutes: u64) -> TtlSt {
    TtlSt { ttl_type: TtlType::AbsoluteTime as i32, abs_ttl: minutes, lat_ttl: 0 }
}

/// LATEST: only the newest `count` rows of each key are kept (0: all).
pub fn latest(count: u64) -> TtlSt {
    TtlSt { ttl_type: TtlType::LatestTime as i32, abs_ttl: 0, lat_ttl: count }
}

/// ABSANDLAT: a row expires only when it is both older than `minutes` and beyond the newest `count`.
pub fn abs_and_lat(minutes: u64, count: u64) -> TtlSt {
    TtlSt { ttl_type: TtlType::AbsAndLat as i32, abs_ttl: minutes, lat_ttl: count }
}

/// ABSORLAT: a row expires when it is older than `minutes` or beyond the newest `count`.
pub fn abs_or_lat(minutes: u64, count: u64) -> TtlSt {
    TtlSt { ttl_type: TtlType::AbsOrLat as i32, abs_ttl: minutes, lat_ttl: count }
}

/// Prints a TTL as OpenMLDB's tools do (`TTLSt::ToString`): `10min`, `3`, `10min&&3`, `10min||3`.
impl fmt::Display for TtlSt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ttl_type() {
            TtlType::Unspecified | TtlType::AbsoluteTime => write!(f, "{}min", self.abs_ttl),
            TtlType::LatestTime => write!(f, "{}", self.lat_ttl),
            TtlType::AbsAndLat => write!(f, "{}min&&{}", self.abs_ttl, self.lat_ttl),
            TtlType::AbsOrLat => write!(f, "{}min||{}", self.abs_ttl, self.lat_ttl),
        }
    }
}

/// A TTL string the CLI could not read; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid TTL {input:?}: {reason}")]
pub struct ParseTtlError {
    pub input: String,
    pub reason: String,
}

const FORMS: &str = "expected N (absolute minutes), abs:N, lat:N, absandlat:N,M or absorlat:N,M \
                     (N minutes, optionally with a unit m, min, h or d; M a row count)";

/// Reads the CLI form of a TTL, keywords case-insensitive:
/// - `N`, `Nmin`, `Nm`, `Nh`, `Nd`, `abs:N`, `absolute:N`: ABSOLUTE (a bare number is minutes, OpenMLDB's
///   default kind);
/// - `lat:N`, `latest:N`: LATEST;
/// - `absandlat:N,M`, `absorlat:N,M`: the combined kinds, minutes first.
///
/// Limits are OpenMLDB's: at most [`ABSOLUTE_TTL_MAX_MIN`] minutes and [`LATEST_TTL_MAX`] rows.
pub fn parse(input: &str) -> Result<TtlSt, ParseTtlError> {
    let fail = |reason: String| ParseTtlError { input: input.to_string(), reason };
    let s = input.trim();
    let Some((kind, arg)) = s.split_once(':') else {
        return minutes(s).map(absolute).map_err(fail);
    };
    let arg = arg.trim();
    match kind.trim().to_ascii_lowercase().as_str() {
        "abs" | "absolute" => minutes(arg).map(absolute).map_err(fail),
        "lat" | "latest" => count(arg).map(latest).map_err(fail),
        kind @ ("absandlat" | "absorlat") => {
            let Some((m, c)) = arg.split_once(',') else {
                return Err(fail(format!("{kind} takes two values, minutes and a row count: {kind}:N,M")));
            };
            let (m, c) = (minutes(m.trim()).map_err(fail)?, count(c.trim()).map_err(fail)?);
            Ok(if kind == "absandlat" { abs_and_lat(m, c) } else { abs_or_lat(m, c) })
        }
        other => Err(fail(format!("unknown TTL kind {other:?}; {FORMS}"))),
    }
}

impl FromStr for TtlSt {
    type Err = ParseTtlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// A duration in minutes: digits with an optional unit (`m`/`min`, `h`, `d`).
fn minutes(s: &str) -> Result<u64, String> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    let per_unit = match unit.to_ascii_lowercase().as_str() {
        "" | "m" | "min" => 1,
        "h" => 60,
        "d" => 24 * 60,
        _ => return Err(format!("{s:?} is not a number of minutes; {FORMS}")),
    };
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a number of minutes; {FORMS}"))?;
    match n.checked_mul(per_unit) {
        Some(min) if min <= ABSOLUTE_TTL_MAX_MIN => Ok(min),
        _ => Err(format!("absolute TTL {s} exceeds the maximum of {ABSOLUTE_TTL_MAX_MIN} minutes")),
    }
}

/// A row count for LATEST.
fn count(s: &str) -> Result<u64, String> {
    let n: u64 = s.parse().map_err(|_| format!("{s:?} is not a row count; {FORMS}"))?;
    if n > LATEST_TTL_MAX {
        return Err(format!("latest TTL {n} exceeds the maximum of {LATEST_TTL_MAX} rows"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = MS_PER_MIN;
    /// A "now" far from the epoch, so cutoffs do not saturate.
    const NOW: u64 = 1_000_000 * MIN;

    fn unspecified(abs: u64, lat: u64) -> TtlSt {
        TtlSt { ttl_type: TtlType::Unspecified as i32, abs_ttl: abs, lat_ttl: lat }
    }

    #[test]
    fn absolute_expires_strictly_older_than_the_cutoff() {
        let ttl = absolute(10);
        let cutoff = NOW - 10 * MIN;
        assert!(expired(&ttl, cutoff - 1, NOW, 0));
        assert!(!expired(&ttl, cutoff, NOW, 0), "exactly at the cutoff is still live");
        assert!(!expired(&ttl, cutoff + 1, NOW, 0));
        assert!(!expired(&ttl, NOW, NOW, 0));
        assert!(!expired(&ttl, NOW + MIN, NOW, 0), "future timestamps are live");
        assert!(expired(&ttl, 0, NOW, 0));
        // The rank plays no part.
        assert!(!expired(&ttl, cutoff, NOW, 1_000_000));
        assert!(expired(&ttl, cutoff - 1, NOW, 0));
    }

    #[test]
    fn absolute_zero_and_huge_limits_never_expire() {
        assert!(!expired(&absolute(0), 0, NOW, 0));
        assert!(!expired(&absolute(0), 0, u64::MAX, usize::MAX));
        // Cutoff before the epoch: nothing is old enough.
        assert!(!expired(&absolute(10), 0, 10 * MIN - 1, 0));
        assert!(!expired(&absolute(10), 0, 10 * MIN, 0), "cutoff 0: ts 0 is not below it");
        assert!(expired(&absolute(10), 0, 10 * MIN + 1, 0));
        // Minutes that overflow milliseconds.
        assert!(!expired(&absolute(u64::MAX), 0, u64::MAX, 0));
        assert!(!expired(&absolute(u64::MAX / MIN + 1), 0, u64::MAX, 0));
    }

    #[test]
    fn unspecified_behaves_like_absolute_and_ignores_lat() {
        let cutoff = NOW - 10 * MIN;
        assert!(expired(&unspecified(10, 0), cutoff - 1, NOW, 0));
        assert!(!expired(&unspecified(10, 0), cutoff, NOW, 0));
        assert!(!expired(&unspecified(0, 1), 0, NOW, 5), "the latest limit does not apply");
        assert!(!expired(&TtlSt::default(), 0, NOW, usize::MAX), "the default TTL never expires");
        // An unknown kind number reads as UNSPECIFIED.
        let unknown = TtlSt { ttl_type: 2, abs_ttl: 10, lat_ttl: 1 };
        assert!(expired(&unknown, cutoff - 1, NOW, 0));
        assert!(!expired(&unknown, cutoff, NOW, 9));
    }

    #[test]
    fn latest_keeps_the_newest_n_per_key() {
        let ttl = latest(3);
        for rank in 0..3 {
            assert!(!expired(&ttl, 0, NOW, rank), "rank {rank}");
        }
        assert!(expired(&ttl, NOW, NOW, 3));
        assert!(expired(&ttl, u64::MAX, NOW, 4), "time plays no part");
        assert!(expired(&latest(1), NOW, NOW, 1));
        assert!(!expired(&latest(1), 0, NOW, 0));
        assert!(!expired(&latest(0), 0, NOW, usize::MAX), "0 keeps all");
        // An absolute part on a LATEST TTL is ignored.
        let with_abs = TtlSt { abs_ttl: 1, ..latest(3) };
        assert!(!expired(&with_abs, 0, NOW, 0));
    }

    #[test]
    fn abs_and_lat_needs_both() {
        let ttl = abs_and_lat(10, 2);
        let old = NOW - 10 * MIN - 1;
        let fresh = NOW - 10 * MIN;
        assert!(expired(&ttl, old, NOW, 2));
        assert!(!expired(&ttl, old, NOW, 1), "old but among the newest 2");
        assert!(!expired(&ttl, fresh, NOW, 2), "beyond 2 but not old");
        assert!(!expired(&ttl, fresh, NOW, 1));
        // A zero limit means that condition never holds, so nothing expires.
        assert!(!expired(&abs_and_lat(0, 2), 0, NOW, 100));
        assert!(!expired(&abs_and_lat(10, 0), 0, NOW, 100));
        assert!(!expired(&abs_and_lat(0, 0), 0, NOW, 100));
    }

    #[test]
    fn abs_or_lat_needs_either() {
        let ttl = abs_or_lat(10, 2);
        let old = NOW - 10 * MIN - 1;
        let fresh = NOW - 10 * MIN;
        assert!(expired(&ttl, old, NOW, 2));
        assert!(expired(&ttl, old, NOW, 0), "old is enough");
        assert!(expired(&ttl, fresh, NOW, 2), "beyond 2 is enough");
        assert!(!expired(&ttl, fresh, NOW, 1));
        // A zero limit disables only its own condition.
        assert!(expired(&abs_or_lat(0, 2), NOW, NOW, 2));
        assert!(!expired(&abs_or_lat(0, 2), 0, NOW, 1));
        assert!(expired(&abs_or_lat(10, 0), old, NOW, 0));
        assert!(!expired(&abs_or_lat(10, 0), fresh, NOW, 1_000));
        assert!(!expired(&abs_or_lat(0, 0), 0, NOW, usize::MAX));
    }

    #[test]
    fn display_matches_openmldb() {
        assert_eq!(TtlSt::default().to_string(), "0min");
        assert_eq!(absolute(0).to_string(), "0min");
        assert_eq!(absolute(10).to_string(), "10min");
        assert_eq!(unspecified(7, 3).to_string(), "7min");
        assert_eq!(latest(3).to_string(), "3");
        assert_eq!(latest(0).to_string(), "0");
        assert_eq!(abs_and_lat(10, 3).to_string(), "10min&&3");
        assert_eq!(abs_or_lat(10, 3).to_string(), "10min||3");
        assert_eq!(abs_or_lat(0, 0).to_string(), "0min||0");
    }

    #[test]
    fn parse_accepts_the_cli_forms() {
        assert_eq!(parse("10").unwrap(), absolute(10));
        assert_eq!(parse("0").unwrap(), absolute(0));
        assert_eq!(parse(" 10min ").unwrap(), absolute(10));
        assert_eq!(parse("10m").unwrap(), absolute(10));
        assert_eq!(parse("2h").unwrap(), absolute(120));
        assert_eq!(parse("1d").unwrap(), absolute(1440));
        assert_eq!(parse("abs:10").unwrap(), absolute(10));
        assert_eq!(parse("ABSOLUTE:3h").unwrap(), absolute(180));
        assert_eq!(parse("lat:3").unwrap(), latest(3));
        assert_eq!(parse("Latest:0").unwrap(), latest(0));
        assert_eq!(parse("absandlat:10,3").unwrap(), abs_and_lat(10, 3));
        assert_eq!(parse("AbsOrLat: 1d , 5").unwrap(), abs_or_lat(1440, 5));
        assert_eq!("absorlat:10,3".parse::<TtlSt>().unwrap(), abs_or_lat(10, 3));
        // The limits themselves are accepted.
        assert_eq!(parse("15768000").unwrap(), absolute(ABSOLUTE_TTL_MAX_MIN));
        assert_eq!(parse("lat:1000").unwrap(), latest(LATEST_TTL_MAX));
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let err = |s: &str| parse(s).unwrap_err().to_string();
        for bad in ["", "abc", "-1", "10s", "1.5", "abs:", "lat:x", "lat:3min", "absandlat:", "absorlat:1,", "x:1"] {
            let msg = err(bad);
            assert!(msg.starts_with(&format!("invalid TTL {bad:?}")), "{msg}");
        }
        assert!(err("foo:1").contains("unknown TTL kind \"foo\""), "{}", err("foo:1"));
        assert!(err("absandlat:10").contains("takes two values"), "{}", err("absandlat:10"));
        assert!(err("10s").contains("abs:N, lat:N"), "{}", err("10s"));
        assert!(err("15768001").contains("exceeds the maximum of 15768000 minutes"));
        assert!(err("11000d").contains("exceeds the maximum"));
        assert!(err("99999999999999999999").contains("not a number of minutes"));
        assert!(err("lat:1001").contains("exceeds the maximum of 1000 rows"));
        assert!(err("absorlat:10,1001").contains("exceeds the maximum of 1000 rows"));
    }

    #[test]
    fn parse_then_display() {
        for (input, shown) in
            [("10", "10min"), ("lat:3", "3"), ("absandlat:10,3", "10min&&3"), ("absorlat:1h,3", "60min||3")]
        {
            assert_eq!(parse(input).unwrap().to_string(), shown);
        }
    }
}
