//! Cron schedules as kube's CronJob controller reads them (`robfig/cron/v3`'s `ParseStandard`):
//! five fields (minute, hour, day of month, month, day of week), each `*` or `?`, a number, a
//! range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from a to the field's end), or a
//! comma-separated list of those; month and weekday names (`jan`, `mon`, any case); the
//! descriptors `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`
//! and `@every <duration>`. Day of month and day of week combine as in cron: when either is
//! `*` both must match, otherwise either may. Times are UTC minutes. Pure.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Fields(Fields),
    /// `@every d`: every `d` (at least one second) from the reference time.
    Every(std::time::Duration),
}

/// Each field a bit set of allowed values; `*_star` when the field was `*` or `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The value of the first name (months start at 1).
    first: u32,
}

fn value(s: &str, b: &Bounds) -> Result<u32, String> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = b.names.iter().position(|n| *n == lower) {
        return Ok(b.first + u32::try_from(i).unwrap_or(0));
    }
    s.parse::<u32>().map_err(|_| {
        format!("failed to parse int from {s}: strconv.Atoi: parsing {s:?}: invalid syntax")
    })
}

/// One comma-separated part: returns its bits and whether it was `*`/`?`.
fn range(expr: &str, b: &Bounds) -> Result<(u64, bool), String> {
    let (range_part, step) = match expr.split_once('/') {
        Some((r, s)) => {
            let step = s
                .parse::<u32>()
                .map_err(|_| format!("failed to parse int from {s}"))?;
            (r, Some(step))
        }
        None => (expr, None),
    };
    let mut star = false;
    let (start, end) = if range_part == "*" || range_part == "?" {
        star = true;
        (b.min, b.max)
    } else if let Some((lo, hi)) = range_part.split_once('-') {
        (value(lo, b)?, value(hi, b)?)
    } else {
        let v = value(range_part, b)?;
        // "N/step" means N through the field's end.
        (v, if step.is_some() { b.max } else { v })
    };
    let step = step.unwrap_or(1);
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    if step > 1 {
        star = false;
    }
    if start < b.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    let mut bits = 0u64;
    let mut v = start;
    while v <= end {
        bits |= 1 << v;
        v += step;
    }
    Ok((bits, star))
}

fn field(expr: &str, b: &Bounds) -> Result<(u64, bool), String> {
    let mut bits = 0;
    let mut star = false;
    for part in expr.split(',') {
        let (b2, s) = range(part, b)?;
        bits |= b2;
        star |= s;
    }
    Ok((bits, star))
}

/// `@every` durations as Go writes them: `1h30m`, `90s`, `500ms`.
fn go_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("failed to parse duration @every {s}: time: invalid duration {s:?}");
    let mut total = std::time::Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "h" => std::time::Duration::from_secs(3600),
            "m" => std::time::Duration::from_secs(60),
            "s" => std::time::Duration::from_secs(1),
            "ms" => std::time::Duration::from_millis(1),
            _ => return Err(bad()),
        };
        total += unit * u32::try_from(n).map_err(|_| bad())?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

impl Schedule {
    /// Parses a schedule; the error reads as robfig's.
    pub fn parse(spec: &str) -> Result<Schedule, String> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err("empty spec string".into());
        }
        let fields = match spec {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with("@every ") => {
                let d = go_duration(s.trim_start_matches("@every ").trim())?;
                // robfig rounds below a second up to one second.
                return Ok(Schedule::Every(d.max(std::time::Duration::from_secs(1))));
            }
            s if s.starts_with('@') => return Err(format!("unrecognized descriptor: {s}")),
            s => s,
        };
        let parts: Vec<&str> = fields.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: {spec}",
                parts.len()
            ));
        }
        let none: &[&str] = &[];
        let (minute, _) = field(
            parts[0],
            &Bounds {
                min: 0,
                max: 59,
                names: none,
                first: 0,
            },
        )?;
        let (hour, _) = field(
            parts[1],
            &Bounds {
                min: 0,
                max: 23,
                names: none,
                first: 0,
            },
        )?;
        let (dom, dom_star) = field(
            parts[2],
            &Bounds {
                min: 1,
                max: 31,
                names: none,
                first: 0,
            },
        )?;
        let (month, _) = field(
            parts[3],
            &Bounds {
                min: 1,
                max: 12,
                names: &MONTHS,
                first: 1,
            },
        )?;
        let (dow, dow_star) = field(
            parts[4],
            &Bounds {
                min: 0,
                max: 6,
                names: &DAYS,
                first: 0,
            },
        )?;
        Ok(Schedule::Fields(Fields {
            minute,
            hour,
            dom,
            month,
            dow,
            dom_star,
            dow_star,
        }))
    }

    /// The first activation strictly after `t`, or `None` if none within five years.
    pub fn next(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(d) => {
                // robfig: t + d rounded down to the second.
                let next = t + Duration::from_std(*d).ok()?;
                Utc.timestamp_opt(next.timestamp(), 0).single()
            }
            Schedule::Fields(f) => f.next(t),
        }
    }
}

impl Fields {
    fn day_matches(&self, t: DateTime<Utc>) -> bool {
        let dom = self.dom & (1 << t.day()) != 0;
        let dow = self.dow & (1 << t.weekday().num_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    fn next(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Start at the next whole minute.
        let mut t = Utc
            .timestamp_opt(t.timestamp() - t.timestamp().rem_euclid(60) + 60, 0)
            .single()?;
        let limit = t + Duration::days(5 * 366);
        while t < limit {
            if self.month & (1 << t.month()) == 0 {
                // First minute of the next month.
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()?;
                continue;
            }
            if !self.day_matches(t) {
                t = Utc
                    .with_ymd_and_hms(t.year(), t.month(), t.day(), 0, 0, 0)
                    .single()?
                    + Duration::days(1);
                continue;
            }
            if self.hour & (1 << t.hour()) == 0 {
                t = Utc
                    .with_ymd_and_hms(t.year(), t.month(), t.day(), t.hour(), 0, 0)
                    .single()?
                    + Duration::hours(1);
                continue;
            }
            if self.minute & (1 << t.minute()) == 0 {
                t += Duration::minutes(1);
                continue;
            }
            return Some(t);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn next_activations_as_robfig_computes_them() {
        // (schedule, after, next)
        let cases = [
            (
                "*/1 * * * *",
                "2024-05-01T10:00:30Z",
                "2024-05-01T10:01:00Z",
            ),
            ("* * * * *", "2024-05-01T10:00:00Z", "2024-05-01T10:01:00Z"),
            (
                "*/15 * * * *",
                "2024-05-01T10:16:00Z",
                "2024-05-01T10:30:00Z",
            ),
            ("5 4 * * *", "2024-05-01T10:00:00Z", "2024-05-02T04:05:00Z"),
            ("0 0 1 1 *", "2024-05-01T10:00:00Z", "2025-01-01T00:00:00Z"),
            ("@hourly", "2024-05-01T10:59:59Z", "2024-05-01T11:00:00Z"),
            ("@daily", "2024-05-01T10:00:00Z", "2024-05-02T00:00:00Z"),
            ("@weekly", "2024-05-01T10:00:00Z", "2024-05-05T00:00:00Z"),
            ("@monthly", "2024-05-01T10:00:00Z", "2024-06-01T00:00:00Z"),
            (
                "0 9 * * mon-fri",
                "2024-05-03T10:00:00Z",
                "2024-05-06T09:00:00Z",
            ),
            (
                "0 0 * JAN,Jul *",
                "2024-05-01T10:00:00Z",
                "2024-07-01T00:00:00Z",
            ),
            (
                "30 2-4/2 * * *",
                "2024-05-01T02:30:00Z",
                "2024-05-01T04:30:00Z",
            ),
            (
                "10/20 * * * *",
                "2024-05-01T10:31:00Z",
                "2024-05-01T10:50:00Z",
            ),
            // Day of month OR day of week when neither is *: the 13th or any Friday.
            ("0 0 13 * 5", "2024-05-01T00:00:00Z", "2024-05-03T00:00:00Z"),
            ("0 0 13 * 5", "2024-05-10T00:00:00Z", "2024-05-13T00:00:00Z"),
            // With one *, both: every Friday that is ... every day of week 5 only.
            ("0 0 * * 5", "2024-05-10T00:00:00Z", "2024-05-17T00:00:00Z"),
            ("0 0 29 2 *", "2024-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
            ("@every 90s", "2024-05-01T10:00:00Z", "2024-05-01T10:01:30Z"),
        ];
        for (spec, after, want) in cases {
            let s = Schedule::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(s.next(t(after)), Some(t(want)), "{spec} after {after}");
        }
        // Never: 30 February.
        assert_eq!(
            Schedule::parse("0 0 30 2 *")
                .expect("parses")
                .next(t("2024-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn bad_schedules_are_refused() {
        for spec in [
            "",
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 7",
            "*/0 * * * *",
            "5-1 * * * *",
            "x * * * *",
            "@fortnightly",
            "@every 1x",
        ] {
            assert!(Schedule::parse(spec).is_err(), "{spec:?} should not parse");
        }
    }
}
