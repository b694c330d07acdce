//! Durations in a config file: a string read by the one shared parser
//! (`mcpgate_proto::duration::parse_duration`: `500ms`, `30s`, `1.5m`, `2d`)
//! or a bare TOML / JSON number of seconds (`30`, `0.25`). Both are checked,
//! never converted with a panicking call, and capped at [`LONGEST`]: a value
//! that fits a `Duration` can still overflow `Instant::now() + d` (breaker
//! cooldowns, connect deadlines), and nothing here is meant to last longer
//! than a century. The caller turns the message into a `ConfigError` that
//! names the file and the key.

use std::time::Duration;

use mcpgate_proto::duration::{DurationError, parse_duration};
use serde_json::Number;

/// The longest duration a config may set: 100 years of 365.25 days.
pub(super) const LONGEST: Duration = Duration::from_secs(3_155_760_000);

/// Why `value` is too long, in the words a config error uses.
fn too_long(value: &str) -> String {
    format!(
        "{value} is too long: the longest accepted is {}s (100 years)",
        LONGEST.as_secs()
    )
}

/// A bare number of seconds (whole or fractional), or what is wrong with it.
pub(super) fn from_seconds(n: &Number) -> Result<Duration, String> {
    let d = if let Some(whole) = n.as_u64() {
        Duration::from_secs(whole)
    } else {
        let f = n
            .as_f64()
            .filter(|f| *f >= 0.0)
            .ok_or_else(|| format!("{n} must be a non-negative number of seconds"))?;
        Duration::try_from_secs_f64(f).map_err(|_| too_long(&n.to_string()))?
    };
    if d > LONGEST {
        return Err(too_long(&n.to_string()));
    }
    Ok(d)
}

/// A duration written as text, or what is wrong with it.
pub(super) fn from_text(s: &str) -> Result<Duration, String> {
    match parse_duration(s) {
        Ok(d) if d <= LONGEST => Ok(d),
        Ok(_) | Err(DurationError::TooLarge) => Err(too_long(&format!("{s:?}"))),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn read(v: Value) -> Result<Duration, String> {
        match v {
            Value::Number(n) => from_seconds(&n),
            Value::String(s) => from_text(&s),
            other => panic!("not a number or a string: {other}"),
        }
    }

    #[test]
    fn strings_and_numbers() {
        assert_eq!(read(json!("250ms")), Ok(Duration::from_millis(250)));
        assert_eq!(read(json!("2m")), Ok(Duration::from_secs(120)));
        assert_eq!(read(json!(" 1.5 h ")), Ok(Duration::from_secs(5400)));
        assert_eq!(read(json!(30)), Ok(Duration::from_secs(30)));
        assert_eq!(read(json!(0.5)), Ok(Duration::from_millis(500)));
        assert_eq!(read(json!("36525d")), Ok(LONGEST));
    }

    #[test]
    fn regression_too_long_or_wrong_is_a_message_not_a_panic() {
        for v in [
            json!(1e20),
            json!(f64::MAX),
            json!(u64::MAX),
            json!("99999999999999999999s"),
            json!("1e300d"),
            json!("36526d"),
        ] {
            let e = read(v.clone()).expect_err("too long");
            assert!(e.contains("too long"), "{v}: {e}");
        }
        assert!(
            read(json!(-1))
                .expect_err("negative")
                .contains("non-negative")
        );
        assert!(read(json!(-0.5)).is_err());
        assert!(read(json!("x")).expect_err("text").starts_with("\"x\": "));
        assert!(read(json!("-1s")).is_err());
        assert!(read(json!("3 fortnights")).is_err());
    }
}
