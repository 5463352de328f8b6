//! The CronJob schedule syntax kube-apiserver accepts (robfig/cron v3's `ParseStandard`, which
//! kube's `validateScheduleFormat` calls): five fields (minute, hour, day of month, month, day
//! of week) with `*`, `?`, lists, ranges, steps and month/day names, or a descriptor
//! (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`,
//! `@every <duration>`), optionally after `TZ=` / `CRON_TZ=`. Only parsing: the apiserver
//! validates schedules, it never computes run times (the cronjob controller keeps its own
//! parser, as the apiserver shares no crate with the controllers). Error texts are robfig's.

/// A field's bounds and names, as robfig's `bounds`.
struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

const DESCRIPTORS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// Checks `spec` as robfig's standard parser does; `Err` carries its error text.
pub fn parse_standard(spec: &str) -> Result<(), String> {
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    let mut spec = spec.trim_start_matches([' ', '\t', '\n', '\r']);
    // A leading TZ=/CRON_TZ= names the location (kube's validation reports it separately).
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let end = spec.find([' ', '\t']).unwrap_or(spec.len());
        let (_, zone) = spec[..end].split_once('=').unwrap_or(("", ""));
        if !zone_name_ok(zone) {
            return Err(format!(
                "provided bad location {zone}: unknown time zone {zone}"
            ));
        }
        spec = spec[end..].trim_start_matches([' ', '\t']);
    }
    if let Some(rest) = spec.strip_prefix('@') {
        return descriptor(spec, rest);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    for (field, bounds) in fields.iter().zip([&MINUTES, &HOURS, &DOM, &MONTHS, &DOW]) {
        get_field(field, bounds)?;
    }
    Ok(())
}

fn descriptor(spec: &str, _rest: &str) -> Result<(), String> {
    if DESCRIPTORS.contains(&spec) {
        return Ok(());
    }
    if let Some(d) = spec.strip_prefix("@every ") {
        return go_duration(d)
            .map(|_| ())
            .map_err(|e| format!("failed to parse duration {spec}: {e}"));
    }
    Err(format!("unrecognized descriptor: {spec}"))
}

/// A comma-separated list of ranges.
fn get_field(field: &str, b: &Bounds) -> Result<(), String> {
    for expr in field.split(',') {
        get_range(expr, b)?;
    }
    Ok(())
}

/// `number | number "-" number [ "/" number ]`, `*` or `?` with an optional step.
fn get_range(expr: &str, b: &Bounds) -> Result<(), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single_digit = low_and_high.len() == 1;
    let (start, mut end);
    if low_and_high[0] == "*" || low_and_high[0] == "?" {
        start = b.min;
        end = b.max;
    } else {
        start = parse_int_or_name(low_and_high[0], b.names)?;
        end = match low_and_high.len() {
            1 => start,
            2 => parse_int_or_name(low_and_high[1], b.names)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
    }
    match range_and_step.len() {
        1 => {}
        2 => {
            let step = must_parse_int(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if single_digit {
                end = b.max;
            }
            if step == 0 {
                return Err(format!("step of range should be a positive number: {expr}"));
            }
        }
        _ => return Err(format!("too many slashes: {expr}")),
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
    Ok(())
}

fn parse_int_or_name(expr: &str, names: &[(&str, u32)]) -> Result<u32, String> {
    let lower = expr.to_ascii_lowercase();
    if let Some((_, n)) = names.iter().find(|(name, _)| *name == lower) {
        return Ok(*n);
    }
    must_parse_int(expr)
}

fn must_parse_int(expr: &str) -> Result<u32, String> {
    // Go's strconv.Atoi: an optional sign, then decimal digits.
    let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: invalid syntax"
        ));
    }
    let n: i64 = match expr.parse() {
        Ok(n) => n,
        Err(_) => {
            return Err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: value out of range"
        ))
        }
    };
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {expr}"));
    }
    u32::try_from(n).map_err(|_| {
        format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: value out of range"
        )
    })
}

/// Go's `time.ParseDuration` syntax (`1h30m`, `90s`, `1.5h`); the value is not needed.
fn go_duration(s: &str) -> Result<(), String> {
    let quoted = format!("time: invalid duration {s:?}");
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body == "0" {
        return Ok(());
    }
    if body.is_empty() {
        return Err(quoted);
    }
    let mut rest = body;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(quoted);
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {s:?}"));
        }
        if !["ns", "us", "µs", "μs", "ms", "s", "m", "h"].contains(&unit) {
            return Err(format!("time: unknown unit {unit:?} in duration {s:?}"));
        }
        rest = &rest[unit_len..];
    }
    Ok(())
}

/// The characters kube allows in each `/`-separated part of a time zone name
/// (`^[A-Za-z\.\-_0-9+]{1,14}$`), with `.`, `..` and a leading `-` refused.
pub fn zone_name_ok(zone: &str) -> bool {
    !zone.is_empty()
        && zone.split('/').all(|part| {
            (1..=14).contains(&part.len())
                && part != "."
                && part != ".."
                && !part.starts_with('-')
                && part
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b".-_+".contains(&c))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_schedules_parse() {
        for ok in [
            "*/1 * * * *",
            "0 0 * * *",
            "5 4 * * sun",
            "0 22 * * 1-5",
            "0 0,12 1 */2 *",
            "15 10 ? * MON-FRI",
            "0 0 1 jan,jul *",
            "@hourly",
            "@daily",
            "@midnight",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
            "@every 1h30m",
            "TZ=UTC 0 * * * *",
            "CRON_TZ=Europe/Paris 0 * * * *",
            "  1 2 3 4 5",
        ] {
            assert_eq!(parse_standard(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn bad_schedules_name_robfigs_error() {
        for (bad, want) in [
            ("", "empty spec string"),
            ("bad", "expected exactly 5 fields, found 1: [bad]"),
            ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
            (
                "* * * * * *",
                "expected exactly 5 fields, found 6: [* * * * * *]",
            ),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("* 24 * * *", "end of range (24) above maximum (23): 24"),
            ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
            ("* * * 13 *", "end of range (13) above maximum (12): 13"),
            ("* * * * 7", "end of range (7) above maximum (6): 7"),
            (
                "5-1 * * * *",
                "beginning of range (5) beyond end of range (1): 5-1",
            ),
            (
                "*/0 * * * *",
                "step of range should be a positive number: */0",
            ),
            ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
            ("*/2/3 * * * *", "too many slashes: */2/3"),
            (
                "x * * * *",
                "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            ("@often", "unrecognized descriptor: @often"),
            (
                "@every 1x",
                "failed to parse duration @every 1x: time: unknown unit \"x\" in duration \"1x\"",
            ),
        ] {
            assert_eq!(parse_standard(bad), Err(want.to_string()), "{bad:?}");
        }
    }

    #[test]
    fn zone_names() {
        for ok in [
            "UTC",
            "Europe/Paris",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
        ] {
            assert!(zone_name_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "../etc",
            "Europe/..",
            "-x",
            "a b",
            "Averyveryverylongname",
        ] {
            assert!(!zone_name_ok(bad), "{bad}");
        }
    }
}
