//! Durations (`"250ms"`, `"5s"`, `"1m"`) and sizes (`1024`, `"64KiB"`, `"1MiB"`).
//!
//! Both are a non-negative decimal number (an optional fraction such as `1.5` is
//! allowed) immediately followed by a unit; spaces between the number and the unit
//! are tolerated. Units are case-sensitive.
//!
//! - Duration units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`.
//! - Size units: `B`; binary `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024); decimal
//!   `KB`, `MB`, `GB`, `TB` (powers of 1000). A bare number is bytes. The
//!   ambiguous `K`/`M`/`G` are refused so nobody has to guess which one was meant.
//!   A fractional size is rounded down to whole bytes.

use std::time::Duration;

/// The longest duration a config may hold (SPEC §2: at most 30 days). Every
/// timer of the proxy adds a configured duration to the clock; this bound keeps
/// that addition far from overflowing `Instant`.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

const DURATION_UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
];

const SIZE_UNITS: &[(&str, u128)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

const DURATION_HELP: &str =
    "a number with a unit: ns, us, ms, s, m or h, like \"250ms\", \"5s\", \"1.5s\", \"1m\"";
const SIZE_HELP: &str = "a number of bytes, or a number with a unit: B, KiB, MiB, GiB, TiB \
     (powers of 1024) or KB, MB, GB, TB (powers of 1000), like \"64KiB\" or \"1MiB\"";

/// Parses a duration such as `"250ms"`, `"5s"`, `"1.5s"`, `"100us"`, `"1m"`, `"1h"`.
///
/// The error says what was wrong and what is accepted.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(s);
    if unit.is_empty() {
        return Err(format!("\"{s}\" has no unit; expected {DURATION_HELP}"));
    }
    let Some(&(_, scale)) = DURATION_UNITS.iter().find(|(u, _)| *u == unit) else {
        return Err(format!(
            "unknown duration unit \"{unit}\"; expected {DURATION_HELP}"
        ));
    };
    let nanos = scaled(number, scale)
        .ok_or_else(|| format!("\"{s}\" is not a valid duration; expected {DURATION_HELP}"))?;
    let secs = u64::try_from(nanos / 1_000_000_000)
        .map_err(|_| format!("\"{s}\" is too long a duration"))?;
    // The remainder is below 10^9, so it fits in a u32.
    let sub = (nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, sub))
}

/// Parses a size written as a string: `"512"`, `"512B"`, `"64KiB"`, `"1MiB"`, `"2GB"`.
///
/// A TOML integer is a number of bytes and needs no parsing; see [`size_from_integer`].
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (number, unit) = split_number(s);
    let scale = if unit.is_empty() {
        1
    } else {
        match SIZE_UNITS.iter().find(|(u, _)| *u == unit) {
            Some(&(_, scale)) => scale,
            None => {
                return Err(format!(
                    "unknown size unit \"{unit}\"; expected {SIZE_HELP}"
                ));
            }
        }
    };
    let bytes = scaled(number, scale)
        .ok_or_else(|| format!("\"{s}\" is not a valid size; expected {SIZE_HELP}"))?;
    u64::try_from(bytes).map_err(|_| format!("\"{s}\" is too large a size"))
}

/// A size written as a TOML integer: a number of bytes, which must not be negative.
pub fn size_from_integer(n: i64) -> Result<u64, String> {
    u64::try_from(n).map_err(|_| format!("a size cannot be negative; expected {SIZE_HELP}"))
}

/// Splits `"1.5 MiB"` into `("1.5", "MiB")`, trimming spaces around both.
fn split_number(s: &str) -> (&str, &str) {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    (s[..end].trim(), s[end..].trim())
}

/// `number × scale`, where `number` is decimal digits with an optional fraction
/// (`_` allowed between digits). Rounded down; `None` when malformed or too large.
fn scaled(number: &str, scale: u128) -> Option<u128> {
    let number = number.replace('_', "");
    let (int, frac) = number.split_once('.').unwrap_or((&number, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (number.contains('.') && frac.is_empty()) {
        return None;
    }
    let whole = int.parse::<u128>().ok()?.checked_mul(scale)?;
    if frac.is_empty() {
        return Some(whole);
    }
    // Digits beyond the 18th cannot change the result for any unit above.
    let frac = &frac[..frac.len().min(18)];
    let denominator = 10u128.pow(frac.len() as u32);
    let part = frac.parse::<u128>().ok()?.checked_mul(scale)? / denominator;
    whole.checked_add(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.25m"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("100µs"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration(" 2 s "), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1_000ms"), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn bad_durations_say_what_is_accepted() {
        for bad in [
            "5", "", "s", "5sec", "-1s", "1.s", ".5s", "1..2s", "5S", "1e3s",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("\"5s\""), "{bad}: {err}");
        }
        assert!(parse_duration("99999999999999999999999h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("64KiB"), Ok(64 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("1KB"), Ok(1_000));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("3GB"), Ok(3_000_000_000));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("64 KiB"), Ok(64 * 1024));
        assert_eq!(size_from_integer(1024), Ok(1024));
    }

    #[test]
    fn bad_sizes_say_what_is_accepted() {
        for bad in ["1M", "1K", "1G", "1mib", "MiB", "", "-1KiB", "1.KiB"] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains("KiB"), "{bad}: {err}");
        }
        assert!(size_from_integer(-1).is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }
}
