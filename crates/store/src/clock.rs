//! Time: the wall clock in milliseconds since the Unix epoch, the calendar
//! arithmetic (start of next month, UTC) behind monthly allowances, and the
//! one way timestamps are shown to people (RFC 3339, UTC), all done with
//! days-from-civil arithmetic instead of a date library.

use std::time::{SystemTime, UNIX_EPOCH};

const MS_PER_DAY: i64 = 86_400_000;

/// Milliseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Days since 1970-01-01 of the proleptic Gregorian date `y-m-d`.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(year, month 1..=12, day 1..=31)` of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The first millisecond of the calendar month (UTC) after the one holding `ms`.
pub(crate) fn next_month_start_ms(ms: i64) -> i64 {
    // Keep the arithmetic far from overflow: beyond year ~292 million the
    // answer is meaningless anyway.
    let ms = ms.clamp(-(1 << 53), 1 << 53);
    let (y, m, _) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(ny, nm, 1) * MS_PER_DAY
}

/// A timestamp (ms since the epoch) as RFC 3339 in UTC, to the second:
/// `2025-02-01T00:00:00Z`.
pub fn format_ts(ms: i64) -> String {
    let ms = ms.clamp(-(1 << 53), 1 << 53);
    let (y, m, d) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    let secs = ms.rem_euclid(MS_PER_DAY) / 1000;
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(y: i64, m: i64, d: i64, hh: i64, mm: i64) -> i64 {
        days_from_civil(y, m, d) * MS_PER_DAY + (hh * 60 + mm) * 60_000
    }

    #[test]
    fn civil_round_trips_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        // 2024-02-29 is 19782 days after the epoch.
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        for z in -800_000..800_000 {
            let (y, m, d) = civil_from_days(z);
            assert!((1..=12).contains(&m) && (1..=31).contains(&d));
            assert_eq!(days_from_civil(y, m, d), z, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn next_month_start_examples() {
        // 2025-01-15 12:34 -> 2025-02-01 00:00 (1738368000000 ms).
        assert_eq!(
            next_month_start_ms(ms(2025, 1, 15, 12, 34)),
            1_738_368_000_000
        );
        assert_eq!(
            next_month_start_ms(ms(2025, 12, 31, 23, 59)),
            ms(2026, 1, 1, 0, 0)
        );
        // Leap February.
        assert_eq!(
            next_month_start_ms(ms(2024, 2, 29, 0, 0)),
            ms(2024, 3, 1, 0, 0)
        );
        assert_eq!(
            next_month_start_ms(ms(2024, 1, 31, 8, 0)),
            ms(2024, 2, 1, 0, 0)
        );
        // Exactly at a month start: the next one, not the same instant.
        assert_eq!(
            next_month_start_ms(ms(2025, 3, 1, 0, 0)),
            ms(2025, 4, 1, 0, 0)
        );
        // The last millisecond of a month.
        assert_eq!(
            next_month_start_ms(ms(2025, 4, 1, 0, 0) - 1),
            ms(2025, 4, 1, 0, 0)
        );
        assert_eq!(next_month_start_ms(0), ms(1970, 2, 1, 0, 0));
        assert_eq!(next_month_start_ms(-1), 0);
        // Extreme inputs do not panic.
        let _ = next_month_start_ms(i64::MAX);
        let _ = next_month_start_ms(i64::MIN);
    }

    #[test]
    fn timestamps_format_as_rfc3339_utc() {
        assert_eq!(format_ts(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_ts(1_738_368_000_000), "2025-02-01T00:00:00Z");
        assert_eq!(
            format_ts(ms(2024, 2, 29, 23, 59) + 59_999),
            "2024-02-29T23:59:59Z"
        );
        assert_eq!(format_ts(-1), "1969-12-31T23:59:59Z");
        assert_eq!(
            format_ts(ms(2026, 11, 23, 9, 5) + 7_999),
            "2026-11-23T09:05:07Z"
        );
        assert_eq!(format_ts(ms(2024, 2, 29, 23, 59)), "2024-02-29T23:59:00Z");
        // Extreme inputs do not panic.
        let _ = format_ts(i64::MAX);
        let _ = format_ts(i64::MIN);
    }

    #[test]
    fn now_is_after_2024() {
        assert!(now_ms() > ms(2024, 1, 1, 0, 0));
    }
}
