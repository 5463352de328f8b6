//! Kubernetes resource quantities (`resource.Quantity`: `100m`, `1.5`, `32Gi`, `1e3`) as exact
//! integers of nano-units, enough to add and compare them as kube's QoS computation does.
//! No I/O.

/// The quantity in units of 10^-9 (so `"1"` is 1,000,000,000 and `"1Ki"` is 1024 * 10^9);
/// None when `s` is not a quantity or does not fit in an i128 (beyond about 10^29 units).
/// Digits below a nano-unit are dropped.
pub fn parse_nanos(s: &str) -> Option<i128> {
    let s = s.trim();
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_len = rest
        .bytes()
        .position(|c| !(c.is_ascii_digit() || c == b'.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if (whole.is_empty() && frac.is_empty()) || frac.contains('.') || whole.len() + frac.len() > 36
    {
        return None;
    }
    let mut mantissa: i128 = 0;
    for c in whole.bytes().chain(frac.bytes()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(c - b'0'))?;
    }
    let (exp10, exp2): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        e if e.starts_with(['e', 'E']) => {
            let x = &e[1..];
            let digits = x.strip_prefix(['+', '-']).unwrap_or(x);
            if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|c| c.is_ascii_digit())
            {
                return None;
            }
            (x.parse::<i32>().ok()?, 0)
        }
        _ => return None,
    };
    // value = mantissa * 10^(exp10 - frac digits) * 2^exp2, in nano-units: 10^9 more.
    let scale = exp10 - i32::try_from(frac.len()).ok()? + 9;
    let mut v = mantissa.checked_mul(1i128.checked_shl(exp2)?)?;
    if scale >= 0 {
        v = v.checked_mul(10i128.checked_pow(u32::try_from(scale).ok()?)?)?;
    } else {
        let down = 10i128.checked_pow(scale.unsigned_abs());
        v = match down {
            Some(d) => v / d,
            None => 0,
        };
    }
    Some(if negative { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIT: i128 = 1_000_000_000;

    #[test]
    fn suffixes_and_fractions() {
        assert_eq!(parse_nanos("1"), Some(UNIT));
        assert_eq!(parse_nanos("1000m"), Some(UNIT));
        assert_eq!(parse_nanos("100m"), Some(UNIT / 10));
        assert_eq!(parse_nanos("1.5"), Some(3 * UNIT / 2));
        assert_eq!(parse_nanos(".5"), Some(UNIT / 2));
        assert_eq!(parse_nanos("2."), Some(2 * UNIT));
        assert_eq!(parse_nanos("1Ki"), Some(1024 * UNIT));
        assert_eq!(parse_nanos("32Gi"), Some(32 * (1 << 30) * UNIT));
        assert_eq!(parse_nanos("1k"), Some(1000 * UNIT));
        assert_eq!(parse_nanos("1e3"), Some(1000 * UNIT));
        assert_eq!(parse_nanos("1E-3"), Some(UNIT / 1000));
        assert_eq!(parse_nanos("5n"), Some(5));
        assert_eq!(parse_nanos("-2"), Some(-2 * UNIT));
        assert_eq!(parse_nanos("0"), Some(0));
        // 1Gi and 1073741824 are the same amount, however written.
        assert_eq!(parse_nanos("1Gi"), parse_nanos("1073741824"));
    }

    #[test]
    fn rejects_what_is_not_a_quantity() {
        for bad in [
            "", "m", "1x", "1.2.3", "1 Gi", "--1", "1e", "1eX", "1Gii", "1e9999",
        ] {
            assert_eq!(parse_nanos(bad), None, "{bad:?}");
        }
        // Too large to hold, not wrapped.
        assert_eq!(parse_nanos("999999999999999999999999999999Ei"), None);
    }
}
