//! Go's text forms of times and durations, as metav1.Time, MicroTime and Duration marshal them.

/// Formats Unix seconds + nanoseconds as RFC 3339 in UTC, with `frac_digits` (0 or 6) digits of
/// truncated fraction, like Go's `time.RFC3339` / `RFC3339Micro` layouts. None when the year is
/// outside 0..=9999, which Go's JSON encoder refuses.
pub fn rfc3339(seconds: i64, nanos: i64, frac_digits: u32) -> Option<String> {
    // time.Unix normalizes nanoseconds outside [0, 1e9) into the seconds.
    let seconds = seconds.checked_add(nanos.div_euclid(1_000_000_000))?;
    let nanos = nanos.rem_euclid(1_000_000_000);
    let days = seconds.div_euclid(86_400);
    let secs_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let (h, mi, s) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    let mut out = format!("{year:04}-{month:02}-{day:02}T{h:02}:{mi:02}:{s:02}");
    if frac_digits == 6 {
        out.push_str(&format!(".{:06}", nanos / 1000));
    }
    out.push('Z');
    Some(out)
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Go's `time.Duration.String()`: "1h2m3.5s", "1.5ms", "0s".
pub fn go_duration(d: i64) -> String {
    let mut u = d.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Below a second Go switches to smaller units, like "1.2ms".
        let (unit, prec) = match u {
            0 => return "0s".to_string(),
            1..1_000 => ("ns", 0),
            1_000..1_000_000 => ("µs", 3),
            _ => ("ms", 6),
        };
        let frac = fraction(&mut u, prec);
        out.push_str(&format!("{u}{frac}{unit}"));
    } else {
        let frac = fraction(&mut u, 9);
        let (secs, mins) = (u % 60, u / 60);
        let rest = format!("{secs}{frac}s");
        if mins > 0 {
            let (m, hours) = (mins % 60, mins / 60);
            if hours > 0 {
                out.push_str(&format!("{hours}h"));
            }
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&rest);
    }
    if d < 0 {
        out.insert(0, '-');
    }
    out
}

/// Splits off the lowest `prec` decimal digits of `v` as ".ddd" without trailing zeros (empty
/// when they are all zero), leaving the integer part in `v`; Go's `fmtFrac`.
fn fraction(v: &mut u64, prec: u32) -> String {
    let mut digits = String::new();
    let mut printed = false;
    for _ in 0..prec {
        let digit = *v % 10;
        printed = printed || digit != 0;
        if printed {
            digits.insert(0, char::from(b'0' + digit as u8));
        }
        *v /= 10;
    }
    if printed {
        format!(".{digits}")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_as_rfc3339_in_utc() {
        let cases = [
            (0, 0, 0, Some("1970-01-01T00:00:00Z")),
            (1_704_164_645, 0, 0, Some("2024-01-02T03:04:05Z")),
            (1_704_164_645, 999_999_999, 0, Some("2024-01-02T03:04:05Z")),
            (
                1_704_164_645,
                123_456_789,
                6,
                Some("2024-01-02T03:04:05.123456Z"),
            ),
            (1_704_164_645, 0, 6, Some("2024-01-02T03:04:05.000000Z")),
            (951_782_400, 0, 0, Some("2000-02-29T00:00:00Z")),
            (-1, 0, 0, Some("1969-12-31T23:59:59Z")),
            (0, -1, 6, Some("1969-12-31T23:59:59.999999Z")),
            (0, 1_500_000_000, 0, Some("1970-01-01T00:00:01Z")),
            (-62_135_596_800, 0, 0, Some("0001-01-01T00:00:00Z")),
            (253_402_300_799, 0, 0, Some("9999-12-31T23:59:59Z")),
            (253_402_300_800, 0, 0, None),
            (i64::MAX, i64::MAX, 0, None),
            (i64::MIN, 0, 0, None),
        ];
        for (secs, nanos, digits, want) in cases {
            assert_eq!(
                rfc3339(secs, nanos, digits).as_deref(),
                want,
                "{secs} {nanos}"
            );
        }
    }

    // Cases from Go's time.TestDurationString.
    #[test]
    fn durations_format_like_go() {
        const NS: i64 = 1;
        const US: i64 = 1_000;
        const MS: i64 = 1_000_000;
        const S: i64 = 1_000_000_000;
        const M: i64 = 60 * S;
        const H: i64 = 60 * M;
        let cases = [
            ("0s", 0),
            ("1ns", NS),
            ("1.1µs", 1100 * NS),
            ("2.2ms", 2200 * US),
            ("3.3s", 3300 * MS),
            ("4m5s", 4 * M + 5 * S),
            ("4m5.001s", 4 * M + 5001 * MS),
            ("5h6m7.001s", 5 * H + 6 * M + 7001 * MS),
            ("8m0.000000001s", 8 * M + NS),
            ("2562047h47m16.854775807s", i64::MAX),
            ("-2562047h47m16.854775808s", i64::MIN),
            ("1h0m0s", H),
            ("-1.5s", -1500 * MS),
        ];
        for (want, d) in cases {
            assert_eq!(go_duration(d), want);
        }
    }
}
