//! Retention periods and cut-off times, computed in UTC.
//!
//! A retention period is a PostgreSQL `interval`: months, days and
//! microseconds kept apart. Every decision about what may be deleted and
//! whether a retention got shorter is made here, in Rust, and never by SQL
//! operators or the session's TimeZone (both of which a caller can change).
//!
//! Times are PostgreSQL timestamps: microseconds since 2000-01-01 00:00:00 UTC.

use chrono::{DateTime, Days, Months, NaiveDateTime};

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
pub const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;
const MICROS_PER_DAY: i128 = 86_400_000_000;

/// A PostgreSQL interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl Period {
    /// The interval's length the way PostgreSQL orders intervals
    /// (`interval_cmp`): a month counts 30 days, a day 24 hours.
    pub fn span_micros(&self) -> i128 {
        (self.months as i128 * 30 + self.days as i128) * MICROS_PER_DAY + self.micros as i128
    }
}

fn to_naive(ts: i64) -> Option<NaiveDateTime> {
    let unix = ts.checked_add(PG_EPOCH_UNIX_MICROS)?;
    DateTime::from_timestamp_micros(unix).map(|d| d.naive_utc())
}

fn from_naive(n: NaiveDateTime) -> Option<i64> {
    n.and_utc()
        .timestamp_micros()
        .checked_sub(PG_EPOCH_UNIX_MICROS)
}

/// `ts - period`, in UTC, the way PostgreSQL's `timestamptz - interval`
/// computes it with TimeZone = 'UTC': months first (a day past the end of the
/// month becomes its last day), then days, then microseconds. None when the
/// result leaves the representable range.
pub fn minus(ts: i64, p: &Period) -> Option<i64> {
    let mut t = to_naive(ts)?;
    t = if p.months >= 0 {
        t.checked_sub_months(Months::new(p.months as u32))?
    } else {
        t.checked_add_months(Months::new(p.months.unsigned_abs()))?
    };
    t = if p.days >= 0 {
        t.checked_sub_days(Days::new(p.days as u64))?
    } else {
        t.checked_add_days(Days::new(p.days.unsigned_abs() as u64))?
    };
    from_naive(t)?.checked_sub(p.micros)
}

/// The purge cut-off: rows inserted at or before it have completed `retention`
/// at `now`.
pub fn cutoff(now: i64, retention: &Period) -> Option<i64> {
    minus(now, retention)
}

/// Whether `p` is a usable retention: no negative part (so it reaches back
/// at every date of the calendar: '1 mon -29 days' reaches into the future
/// every March), and longer than zero both as an interval and at the calendar
/// of `now`.
pub fn is_positive(p: &Period, now: i64) -> bool {
    p.months >= 0
        && p.days >= 0
        && p.micros >= 0
        && p.span_micros() > 0
        && minus(now, p).is_some_and(|c| c < now)
}

/// Whether `new` is at least as long as `old`, both as intervals and at the
/// calendar of `now` (so "1 month" does not replace "31 days" in a short month).
pub fn not_shorter(new: &Period, old: &Period, now: i64) -> bool {
    if new.span_micros() < old.span_micros() {
        return false;
    }
    match (minus(now, new), minus(now, old)) {
        (Some(n), Some(o)) => n <= o,
        // A period too long to subtract from now is longer than any that can.
        (None, Some(_)) => true,
        (Some(_), None) => false,
        (None, None) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-26 12:00:00 UTC as a PostgreSQL timestamp.
    fn ts(y: i32, mo: u32, d: u32, h: u32) -> i64 {
        let n = chrono::NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap();
        from_naive(n).unwrap()
    }
    fn p(months: i32, days: i32, micros: i64) -> Period {
        Period {
            months,
            days,
            micros,
        }
    }

    #[test]
    fn six_years_back_is_a_calendar_date() {
        assert_eq!(
            minus(ts(2026, 11, 26, 12), &p(72, 0, 0)),
            Some(ts(2020, 11, 26, 12))
        );
    }

    #[test]
    fn month_end_clamps_like_postgresql() {
        // '2024-03-31' - '1 month' = '2024-02-29'
        assert_eq!(
            minus(ts(2024, 3, 31, 0), &p(1, 0, 0)),
            Some(ts(2024, 2, 29, 0))
        );
        // months, then days, then time
        assert_eq!(
            minus(ts(2024, 3, 31, 5), &p(1, 1, 3_600_000_000)),
            Some(ts(2024, 2, 28, 4))
        );
    }

    #[test]
    fn negative_components_add() {
        assert_eq!(
            minus(ts(2024, 1, 31, 0), &p(-1, 0, 0)),
            Some(ts(2024, 2, 29, 0))
        );
        assert_eq!(
            minus(ts(2024, 1, 1, 0), &p(0, -1, 0)),
            Some(ts(2024, 1, 2, 0))
        );
    }

    #[test]
    fn out_of_range_is_none() {
        assert_eq!(minus(i64::MIN + 1, &p(0, 0, 10)), None);
        assert_eq!(minus(0, &p(i32::MAX, 0, 0)), None);
    }

    #[test]
    fn positivity() {
        let now = ts(2026, 11, 26, 12);
        assert!(is_positive(&p(0, 0, 1), now));
        assert!(!is_positive(&p(0, 0, 0), now));
        assert!(!is_positive(&p(0, 0, -1), now));
        assert!(!is_positive(&p(1, -30, 0), now));
        assert!(!is_positive(&p(-72, 0, 0), now));
        // Mixed signs reach into the future on some dates.
        assert!(!is_positive(&p(1, -29, 0), ts(2026, 3, 1, 0)));
        assert!(!is_positive(&p(1, -29, 0), ts(2026, 11, 26, 0)));
        assert!(!is_positive(&p(-12, 361, 0), now));
    }

    #[test]
    fn lengthen_only() {
        let now = ts(2026, 11, 26, 12);
        assert!(not_shorter(&p(84, 0, 0), &p(72, 0, 0), now));
        assert!(not_shorter(&p(72, 0, 0), &p(72, 0, 0), now));
        assert!(!not_shorter(&p(0, 0, 1_000_000), &p(72, 0, 0), now));
        // 1 month is 30 days as an interval but shorter than 31 days in a 30-day month.
        assert!(!not_shorter(&p(1, 0, 0), &p(0, 31, 0), ts(2026, 12, 1, 0)));
        assert!(!not_shorter(&p(0, 30, 0), &p(1, 0, 0), ts(2026, 3, 31, 0)));
    }
}
