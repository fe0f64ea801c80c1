//! Durations as scenario files write them: `"500ms"`, `"10s"`, `"2m"`, `"1h"`, and decimals such as `"1.5s"`.
//!
//! A number (digits, optionally a `.` and more digits) directly followed by one unit: `ms`, `s`, `m` or `h`.
//! No sign, no spaces, no compound forms (`"1m30s"`): one way to write a value keeps files easy to grep. Decimals are
//! exact down to the nanosecond; anything finer is refused rather than rounded.

use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// What a good duration looks like, for error messages.
pub(crate) const DURATION_HINT: &str =
    r#"expected a number and a unit (ms, s, m or h), e.g. "500ms", "10s", "1.5s", "2m""#;

/// Parses `"500ms"`, `"10s"`, `"1.5s"`, `"2m"`, `"1h"`. The error says what is wrong, without the key.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let unit_nanos: u128 = match unit {
        "ms" => 1_000_000,
        "s" => NANOS_PER_SEC,
        "m" => 60 * NANOS_PER_SEC,
        "h" => 3600 * NANOS_PER_SEC,
        "" => return Err(format!("bad duration {text:?}: no unit; {DURATION_HINT}")),
        _ => return Err(format!("bad duration {text:?}: unknown unit {unit:?}; {DURATION_HINT}")),
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !plain(whole) || (number.contains('.') && !plain(frac)) {
        return Err(format!("bad duration {text:?}: {DURATION_HINT}"));
    }
    let too_long = || format!("bad duration {text:?}: too long");
    // At most 19 digits on either side keeps every product below u128::MAX.
    if whole.len() > 19 || frac.len() > 19 {
        return Err(too_long());
    }
    let whole: u128 = whole.parse().map_err(|_| too_long())?;
    let frac_value: u128 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| too_long())? };
    let scale = 10u128.pow(u32::try_from(frac.len()).expect("at most 19 digits"));
    if !(frac_value * unit_nanos).is_multiple_of(scale) {
        return Err(format!("bad duration {text:?}: finer than a nanosecond"));
    }
    let nanos = whole * unit_nanos + frac_value * unit_nanos / scale;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| too_long())?;
    let sub = u32::try_from(nanos % NANOS_PER_SEC).expect("below one second");
    Ok(Duration::new(secs, sub))
}

/// Writes a duration the way a scenario file would (`"120s"`, `"500ms"`, `"1.5s"`), for messages.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos.is_multiple_of(NANOS_PER_SEC) {
        format!("{}s", nanos / NANOS_PER_SEC)
    } else if nanos.is_multiple_of(1_000_000) && nanos < NANOS_PER_SEC {
        format!("{}ms", nanos / 1_000_000)
    } else {
        format!("{d:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_decimals() {
        let ok = [
            ("0s", Duration::ZERO),
            ("500ms", Duration::from_millis(500)),
            ("10s", Duration::from_secs(10)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1.5s", Duration::from_millis(1500)),
            ("0.25m", Duration::from_secs(15)),
            ("2.5ms", Duration::from_micros(2500)),
            ("1.000000001s", Duration::new(1, 1)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_why() {
        assert_eq!(parse_duration("10").unwrap_err(), format!("bad duration \"10\": no unit; {DURATION_HINT}"));
        assert_eq!(
            parse_duration("10x").unwrap_err(),
            format!("bad duration \"10x\": unknown unit \"x\"; {DURATION_HINT}")
        );
        for text in ["", "s", ".5s", "1.s", "-1s", " 1s", "1 s", "1.2.3s", "1e3s"] {
            assert!(parse_duration(text).is_err(), "{text:?} should be refused");
        }
        assert_eq!(
            parse_duration("1.0000000001s").unwrap_err(),
            "bad duration \"1.0000000001s\": finer than a nanosecond"
        );
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("9999999999999999999h").is_err());
    }

    #[test]
    fn formats_like_a_file() {
        assert_eq!(format_duration(Duration::from_secs(120)), "120s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
    }
}
