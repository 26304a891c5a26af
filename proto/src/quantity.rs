//! Resource quantities (`100m`, `64Mi`, `1.5Gi`, `2e3`) as Kubernetes' `resource.Quantity` reads them.
//!
//! Values are held as signed milli-units in an `i128`, rounded up to the milli scale the way the API
//! server's defaulting rounds every `ResourceList` entry, so `1n` is `1m` and `0.5` is `500m`.

use std::fmt;

/// How the quantity was written; the canonical string keeps the same family of suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `Ki`, `Mi`, ... (powers of 1024)
    BinarySI,
    /// `m`, `k`, `M`, ... or no suffix (powers of 1000)
    DecimalSI,
    /// `1e3`, `5E6`
    DecimalExponent,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text the API server returns for a malformed quantity.
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    FormatWrong,
    #[error("unable to parse quantity's suffix")]
    Suffix,
    #[error("quantity is too large")]
    TooLarge,
}

pub type Result<T, E = QuantityError> = std::result::Result<T, E>;

/// A parsed quantity: the value in milli-units plus the suffix family it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    pub millis: i128,
    pub format: Format,
}

/// Milli-units of `s` (`"100m"` -> 100, `"1"` -> 1000, `"1Ki"` -> 1_024_000).
pub fn parse_quantity(s: &str) -> Result<i128> {
    parse(s).map(|q| q.millis)
}

/// Same as [`parse_quantity`]; reads better at call sites that compare CPU.
pub fn to_millis(s: &str) -> Result<i128> {
    parse_quantity(s)
}

/// Whole units of `s`, rounded up (`"64Mi"` -> 67_108_864, `"100m"` -> 1), like `Quantity.Value()`.
pub fn to_bytes(s: &str) -> Result<i128> {
    parse(s).map(|q| q.value())
}

impl Quantity {
    /// Whole units, rounded away from zero.
    pub fn value(&self) -> i128 {
        let whole = self.millis / 1000;
        if self.millis % 1000 == 0 {
            whole
        } else if self.millis > 0 {
            whole + 1
        } else {
            whole - 1
        }
    }

    /// The form `Quantity.String()` prints (`1024Mi` -> `1Gi`, `0.5` -> `500m`, `1000` -> `1k`).
    pub fn canonical(&self) -> String {
        let m = self.millis;
        if m == 0 {
            return "0".into();
        }
        if m % 1000 != 0 {
            return format!("{m}m");
        }
        let v = m / 1000;
        match self.format {
            Format::BinarySI if v.abs() >= 1024 => {
                let (mut n, mut idx) = (v, 0);
                while idx < 6 && n % 1024 == 0 {
                    n /= 1024;
                    idx += 1;
                }
                let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][idx];
                format!("{n}{suffix}")
            }
            Format::DecimalExponent => {
                let (mut n, mut exp) = (v, 0);
                while n % 1000 == 0 {
                    n /= 1000;
                    exp += 3;
                }
                if exp == 0 { format!("{n}") } else { format!("{n}e{exp}") }
            }
            _ => {
                let (mut n, mut idx) = (v, 0);
                while idx < 6 && n % 1000 == 0 {
                    n /= 1000;
                    idx += 1;
                }
                let suffix = ["", "k", "M", "G", "T", "P", "E"][idx];
                format!("{n}{suffix}")
            }
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// Parses `s` following `resource.ParseQuantity`.
pub fn parse(s: &str) -> Result<Quantity> {
    if s.is_empty() {
        return Err(QuantityError::FormatWrong);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let negative = match bytes[0] {
        b'-' => {
            i = 1;
            true
        }
        b'+' => {
            i = 1;
            false
        }
        _ => false,
    };
    let num_start = i;
    let mut mantissa: i128 = 0;
    let mut frac_digits: i32 = 0;
    let mut seen_dot = false;
    let mut digits = 0;
    // Digits past what an i128 holds only shift the scale; they cannot change a milli-rounded value
    // by more than the rounding step, so drop them rather than fail.
    let mut dropped_int_digits: i32 = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'0'..=b'9' => {
                digits += 1;
                let d = i128::from(bytes[i] - b'0');
                match mantissa.checked_mul(10).and_then(|x| x.checked_add(d)) {
                    Some(x) if x < 10i128.pow(36) => {
                        mantissa = x;
                        if seen_dot {
                            frac_digits += 1;
                        }
                    }
                    _ => {
                        if !seen_dot {
                            dropped_int_digits += 1;
                        }
                    }
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            b'.' => return Err(QuantityError::FormatWrong),
            _ => break,
        }
        i += 1;
    }
    if i == num_start || digits == 0 {
        return Err(QuantityError::FormatWrong);
    }
    let suffix = &s[i..];
    let (base2_pow, mut exp10, format) = parse_suffix(suffix)?;
    exp10 += dropped_int_digits - frac_digits + 3; // +3: milli-units
    let mut value = mantissa;
    for _ in 0..base2_pow {
        value = value.checked_mul(1024).ok_or(QuantityError::TooLarge)?;
    }
    let millis = if exp10 >= 0 {
        let scale = 10i128.checked_pow(exp10 as u32).ok_or(QuantityError::TooLarge)?;
        value.checked_mul(scale).ok_or(QuantityError::TooLarge)?
    } else {
        let neg = (-exp10) as u32;
        match 10i128.checked_pow(neg) {
            Some(scale) => {
                let whole = value / scale;
                if value % scale == 0 { whole } else { whole + 1 }
            }
            // Any non-zero remainder smaller than 10^-38 still rounds up to one milli-unit.
            None => i128::from(value != 0),
        }
    };
    Ok(Quantity { millis: if negative { -millis } else { millis }, format })
}

/// Returns (power of 1024, power of 10, format) for a suffix.
fn parse_suffix(suffix: &str) -> Result<(u32, i32, Format)> {
    let found = match suffix {
        "" => (0, 0, Format::DecimalSI),
        "n" => (0, -9, Format::DecimalSI),
        "u" => (0, -6, Format::DecimalSI),
        "m" => (0, -3, Format::DecimalSI),
        "k" => (0, 3, Format::DecimalSI),
        "M" => (0, 6, Format::DecimalSI),
        "G" => (0, 9, Format::DecimalSI),
        "T" => (0, 12, Format::DecimalSI),
        "P" => (0, 15, Format::DecimalSI),
        "E" => (0, 18, Format::DecimalSI),
        "Ki" => (1, 0, Format::BinarySI),
        "Mi" => (2, 0, Format::BinarySI),
        "Gi" => (3, 0, Format::BinarySI),
        "Ti" => (4, 0, Format::BinarySI),
        "Pi" => (5, 0, Format::BinarySI),
        "Ei" => (6, 0, Format::BinarySI),
        _ => {
            let rest = suffix.strip_prefix(['e', 'E']).ok_or_else(|| suffix_error(suffix))?;
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(suffix_error(suffix));
            }
            let exp: i32 = rest.parse().map_err(|_| QuantityError::TooLarge)?;
            if !(-100..=100).contains(&exp) {
                return Err(QuantityError::TooLarge);
            }
            (0, exp, Format::DecimalExponent)
        }
    };
    Ok(found)
}

/// Characters outside the quantity alphabet are a format error; known letters in a bad order are a suffix error.
fn suffix_error(suffix: &str) -> QuantityError {
    let alphabet_ok = suffix.bytes().all(|b| b"eEinumkKMGTP+-0123456789".contains(&b));
    if alphabet_ok { QuantityError::Suffix } else { QuantityError::FormatWrong }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_quantity_returns_milli_units_for_every_suffix_family() {
        let cases: &[(&str, i128)] = &[
            ("0", 0),
            ("100m", 100),
            ("1", 1000),
            ("0.5", 500),
            ("1.5", 1500),
            ("2k", 2_000_000),
            ("1M", 1_000_000_000),
            ("1Ki", 1_024_000),
            ("64Mi", 64 * 1024 * 1024 * 1000),
            ("1Gi", 1024i128.pow(3) * 1000),
            ("1Ei", 1024i128.pow(6) * 1000),
            ("1e3", 1_000_000),
            ("5E-3", 5),
            ("1n", 1),
            ("1500u", 2),
            ("-1", -1000),
            ("+2", 2000),
            (".5", 500),
        ];
        for (input, want) in cases {
            assert_eq!(parse_quantity(input), Ok(*want), "{input}");
        }
    }

    #[test]
    fn malformed_quantities_are_rejected_with_kubernetes_messages() {
        for bad in ["", "abc", "1.2.3", "m", "1 Gi", "--1"] {
            assert_eq!(parse_quantity(bad), Err(QuantityError::FormatWrong), "{bad}");
        }
        for bad in ["1K", "1iK", "1Mii", "1e"] {
            assert_eq!(parse_quantity(bad), Err(QuantityError::Suffix), "{bad}");
        }
        assert!(QuantityError::FormatWrong.to_string().starts_with("quantities must match the regular expression"));
    }

    #[test]
    fn to_bytes_rounds_up_to_whole_units() {
        assert_eq!(to_bytes("64Mi"), Ok(67_108_864));
        assert_eq!(to_bytes("100m"), Ok(1));
        assert_eq!(to_millis("250m"), Ok(250));
    }

    #[test]
    fn canonical_form_matches_quantity_string() {
        let cases = [
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("0.5", "500m"),
            ("1000m", "1"),
            ("1000", "1k"),
            ("100m", "100m"),
            ("512", "512"),
            ("1e3", "1e3"),
            ("0", "0"),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).map(|q| q.canonical()).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn huge_values_error_instead_of_overflowing() {
        assert_eq!(parse_quantity("1e99"), Err(QuantityError::TooLarge));
        assert!(parse_quantity("99999999999999999999999999999999999999999999Ei").is_err());
    }
}
