//! Durations as people write them in config files and on command lines:
//! `500ms`, `2s`, `1.5m`, `1 min`, `1h`, `2d`, or a bare number of seconds.
//! One parser for every crate (the gateway's config and admin API, the
//! bench's flags), so `30s` means the same everywhere. It works in whole
//! nanoseconds with checked integer arithmetic, never in floating point, so a
//! value too long for [`Duration`] is a [`DurationError::TooLarge`], not a
//! panic or a silent wrap.
//!
//! Grammar: optional spaces, a decimal number (`2`, `1.5`, `.5`, `2.`, with an
//! optional leading `+` and exponent such as `1e3` or `2.5E-3`), optional
//! spaces, and a unit: `ns`, `us` (or `µs`), `ms`, `s`, `m` (or `min`), `h`,
//! `d`; no unit means seconds. Units are case-sensitive. A value is exact to
//! the nanosecond (truncated below it) as long as its number has at most 24
//! significant digits; later digits are dropped, which for anything shorter
//! than some thirty million years is below a nanosecond anyway.

use std::fmt;
use std::time::Duration;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// Nothing but white space.
    Empty,
    /// No number where the duration should start.
    NotANumber,
    /// A leading minus sign.
    Negative,
    /// A number followed by something that is not a known unit.
    UnknownUnit(String),
    /// Longer than [`Duration::MAX`] (about 584 billion years).
    TooLarge,
}

const EXAMPLES: &str = "like 500ms, 2s, 1.5m, 1h or 2d";

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Empty => write!(f, "empty duration: write one {EXAMPLES}"),
            DurationError::NotANumber => {
                write!(f, "not a duration: write a number and a unit, {EXAMPLES}")
            }
            DurationError::Negative => write!(f, "a duration cannot be negative"),
            DurationError::UnknownUnit(unit) => write!(
                f,
                "unknown duration unit {unit:?}: use ns, us, ms, s, m (or min), h or d"
            ),
            DurationError::TooLarge => write!(
                f,
                "duration too long: the longest is {} seconds (about 584 billion years)",
                u64::MAX
            ),
        }
    }
}

impl std::error::Error for DurationError {}

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Significant digits kept from the number; 10^24 times the longest unit
/// (a day, 8.64e13 ns) still fits a `u128`.
const MAX_SIGNIFICANT_DIGITS: u32 = 24;

/// An exponent this far from zero makes any non-zero value overflow (or
/// vanish); capping it keeps the exponent arithmetic itself in range.
const MAX_EXPONENT: i64 = 1_000;

/// Parses a duration such as `500ms`, `2s`, `1.5m`, `1h`, `2d` or `30` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let (number, unit) = text.split_at(number_len(text));
    let unit = unit.trim_start();
    if number.is_empty() || unit.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return Err(DurationError::NotANumber);
    }
    let nanos_per_unit = unit_nanos(unit)?;
    let decimal = Decimal::parse(number)?;
    let nanos = decimal
        .times(nanos_per_unit)
        .ok_or(DurationError::TooLarge)?;
    let seconds = u64::try_from(nanos / NANOS_PER_SECOND).map_err(|_| DurationError::TooLarge)?;
    // The remainder is below 10^9, so it always fits.
    let subsec = u32::try_from(nanos % NANOS_PER_SECOND).map_err(|_| DurationError::TooLarge)?;
    Ok(Duration::new(seconds, subsec))
}

/// Nanoseconds in one `unit`.
fn unit_nanos(unit: &str) -> Result<u128, DurationError> {
    Ok(match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "" | "s" => NANOS_PER_SECOND,
        "m" | "min" => 60 * NANOS_PER_SECOND,
        "h" => 3_600 * NANOS_PER_SECOND,
        "d" => 86_400 * NANOS_PER_SECOND,
        other => return Err(DurationError::UnknownUnit(other.to_owned())),
    })
}

/// The length of the number at the start of `text`: sign, digits, one point,
/// digits, and an exponent only when digits follow its `e`.
fn number_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let digits_from = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut end = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    end = digits_from(end);
    if bytes.get(end) == Some(&b'.') {
        end = digits_from(end + 1);
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut exponent = end + 1;
        if matches!(bytes.get(exponent), Some(b'+' | b'-')) {
            exponent += 1;
        }
        let after = digits_from(exponent);
        if after > exponent {
            end = after;
        }
    }
    end
}

/// A non-negative decimal `significand × 10^exponent`.
#[derive(Debug, PartialEq)]
struct Decimal {
    significand: u128,
    exponent: i64,
}

impl Decimal {
    fn parse(number: &str) -> Result<Self, DurationError> {
        let number = match number.as_bytes().first() {
            Some(b'-') => return Err(DurationError::Negative),
            Some(b'+') => &number[1..],
            _ => number,
        };
        let (mantissa, exponent) = match number.find(['e', 'E']) {
            Some(at) => (&number[..at], parse_exponent(&number[at + 1..])?),
            None => (number, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if whole.is_empty() && fraction.is_empty() {
            return Err(DurationError::NotANumber);
        }
        let mut decimal = Decimal {
            significand: 0,
            exponent,
        };
        let mut kept = 0;
        for (digit, in_fraction) in whole
            .bytes()
            .map(|d| (d, false))
            .chain(fraction.bytes().map(|d| (d, true)))
        {
            let value = u128::from(digit.wrapping_sub(b'0'));
            if value > 9 {
                return Err(DurationError::NotANumber);
            }
            if kept < MAX_SIGNIFICANT_DIGITS {
                decimal.significand = decimal
                    .significand
                    .checked_mul(10)
                    .and_then(|s| s.checked_add(value))
                    .ok_or(DurationError::TooLarge)?;
                if decimal.significand > 0 {
                    kept += 1;
                }
                if in_fraction {
                    decimal.exponent = decimal.exponent.saturating_sub(1);
                }
            } else if !in_fraction {
                // A dropped whole digit still multiplies the value by ten.
                decimal.exponent = decimal.exponent.saturating_add(1);
            }
        }
        Ok(decimal)
    }

    /// `self × factor`, truncated to a whole number; `None` if it overflows.
    fn times(&self, factor: u128) -> Option<u128> {
        if self.significand == 0 {
            return Some(0);
        }
        let product = self.significand.checked_mul(factor)?;
        if self.exponent >= 0 {
            let scale = 10u128.checked_pow(u32::try_from(self.exponent).ok()?)?;
            product.checked_mul(scale)
        } else {
            match u32::try_from(self.exponent.unsigned_abs()) {
                Ok(places) => Some(
                    10u128
                        .checked_pow(places)
                        .map_or(0, |scale| product / scale),
                ),
                // More places than any u128 has digits.
                Err(_) => Some(0),
            }
        }
    }
}

/// The exponent after `e`: optional sign and digits, clamped to
/// ±[`MAX_EXPONENT`].
fn parse_exponent(text: &str) -> Result<i64, DurationError> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|d| d.is_ascii_digit()) {
        return Err(DurationError::NotANumber);
    }
    let magnitude = digits.bytes().fold(0i64, |acc, d| {
        acc.saturating_mul(10)
            .saturating_add(i64::from(d - b'0'))
            .min(MAX_EXPONENT)
    });
    Ok(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Duration {
        parse_duration(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn what_the_bench_and_the_gateway_accepted() {
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("2s"), Duration::from_secs(2));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("1m"), Duration::from_secs(60));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("5 min"), Duration::from_secs(300));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("2d"), Duration::from_secs(172_800));
        assert_eq!(ok("3"), Duration::from_secs(3));
        assert_eq!(ok(" 2 s "), Duration::from_secs(2));
        assert_eq!(ok("250us"), Duration::from_micros(250));
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("2.s"), Duration::from_secs(2));
        assert_eq!(ok("+2s"), Duration::from_secs(2));
        assert_eq!(ok("1e3ms"), Duration::from_secs(1));
        assert_eq!(ok("2.5E-3s"), Duration::from_micros(2500));
        assert_eq!(ok("0.1s"), Duration::from_millis(100));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("1.25h"), Duration::from_secs(4500));
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("  "), Err(DurationError::Empty));
        assert_eq!(parse_duration("fast"), Err(DurationError::NotANumber));
        assert_eq!(parse_duration("x"), Err(DurationError::NotANumber));
        assert_eq!(parse_duration("."), Err(DurationError::NotANumber));
        assert_eq!(parse_duration("s"), Err(DurationError::NotANumber));
        assert_eq!(parse_duration("1.2.3s"), Err(DurationError::NotANumber));
        assert_eq!(parse_duration("1 2s"), Err(DurationError::NotANumber));
        assert_eq!(parse_duration("-1s"), Err(DurationError::Negative));
        assert_eq!(
            parse_duration("10 parsecs"),
            Err(DurationError::UnknownUnit("parsecs".to_owned()))
        );
        assert_eq!(
            parse_duration("1e"),
            Err(DurationError::UnknownUnit("e".to_owned()))
        );
        assert_eq!(
            parse_duration("1S"),
            Err(DurationError::UnknownUnit("S".to_owned()))
        );
        assert_eq!(parse_duration("inf"), Err(DurationError::NotANumber));
        assert_eq!(parse_duration("NaN"), Err(DurationError::NotANumber));
        assert!(
            DurationError::UnknownUnit("w".to_owned())
                .to_string()
                .contains("\"w\"")
        );
        assert!(
            DurationError::TooLarge
                .to_string()
                .contains(&u64::MAX.to_string())
        );
    }

    #[test]
    fn huge_values_are_an_error_not_a_panic() {
        for text in [
            "999999999999999d",
            "99999999999999999999s",
            "18446744073709551616s",
            "307445734561825861m",
            "1e20s",
            "1e999999999999999999999s",
            "99999999999999999999999999999999999999999999999999999d",
            "5124095576030432h",
        ] {
            assert_eq!(parse_duration(text), Err(DurationError::TooLarge), "{text}");
        }
        assert_eq!(ok("18446744073709551615s"), Duration::new(u64::MAX, 0));
        assert_eq!(ok("1e-999999999999999999999s"), Duration::ZERO);
        assert_eq!(ok("0e999999999d"), Duration::ZERO);
        assert_eq!(
            ok("0.000000000000000000000000000000000000000000001d"),
            Duration::ZERO
        );
    }

    #[test]
    fn many_digits_keep_their_value() {
        let long_one = format!("1.{}s", "0".repeat(200));
        assert_eq!(ok(&long_one), Duration::from_secs(1));
        let padded = format!("{}42ms", "0".repeat(200));
        assert_eq!(ok(&padded), Duration::from_millis(42));
        assert_eq!(
            ok("1.000000000000000000000000000001d"),
            Duration::from_secs(86_400)
        );
    }

    /// Every whole number of every unit, compared with exact u128 arithmetic:
    /// the parse is `Ok` exactly when the product fits a `Duration`.
    #[test]
    fn whole_numbers_of_every_unit_match_exact_arithmetic() {
        let units: [(&str, u128); 9] = [
            ("ns", 1),
            ("us", 1_000),
            ("ms", 1_000_000),
            ("s", NANOS_PER_SECOND),
            ("", NANOS_PER_SECOND),
            ("m", 60 * NANOS_PER_SECOND),
            ("min", 60 * NANOS_PER_SECOND),
            ("h", 3_600 * NANOS_PER_SECOND),
            ("d", 86_400 * NANOS_PER_SECOND),
        ];
        let mut numbers: Vec<u128> = vec![0, 1, 9, 10, u128::from(u64::MAX), u128::MAX];
        for shift in 0..128 {
            let power = 1u128 << shift;
            numbers.extend([power - 1, power, power + 1]);
        }
        let mut ten = 1u128;
        while let Some(next) = ten.checked_mul(10) {
            numbers.extend([ten - 1, ten, ten + 1, next / 3]);
            ten = next;
        }
        let mut checked = 0;
        for n in numbers {
            // The documented rounding: digits after the 24th significant one
            // are dropped (zeroed).
            let digits = u32::try_from(n.to_string().len()).expect("few digits");
            let dropped = 10u128.pow(digits.saturating_sub(MAX_SIGNIFICANT_DIGITS));
            let kept = n / dropped * dropped;
            for (unit, per_unit) in units {
                let text = format!("{n}{unit}");
                let expected = kept
                    .checked_mul(per_unit)
                    .filter(|nanos| nanos / NANOS_PER_SECOND <= u128::from(u64::MAX))
                    .map(|nanos| {
                        Duration::new(
                            (nanos / NANOS_PER_SECOND) as u64,
                            (nanos % NANOS_PER_SECOND) as u32,
                        )
                    })
                    .ok_or(DurationError::TooLarge);
                assert_eq!(parse_duration(&text), expected, "{text}");
                checked += 1;
            }
        }
        assert!(checked > 1_000, "only {checked} cases checked");
    }

    /// Strings of nines of every length, with and without fractions and
    /// exponents: each parses or is refused, and never panics.
    #[test]
    fn long_strings_of_nines_never_panic() {
        for len in 1..120 {
            let nines = "9".repeat(len);
            for text in [
                format!("{nines}d"),
                format!("{nines}ns"),
                format!("0.{nines}s"),
                format!("{nines}.{nines}h"),
                format!("{nines}e{nines}s"),
                format!("{nines}e-{nines}s"),
            ] {
                match parse_duration(&text) {
                    Ok(_) | Err(DurationError::TooLarge) => {}
                    Err(other) => panic!("{text}: {other}"),
                }
            }
        }
    }
}
