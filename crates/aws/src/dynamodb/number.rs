//! DynamoDB's number type: a signed decimal of up to 38 significant digits with a magnitude
//! between 1E-130 and 9.99..E+125, sent as a string.
//!
//! Numbers are compared by value, never as strings or floats (`"10" > "9"`, and 38 digits do
//! not fit an `f64`), and sort keys of type N are stored with an order-preserving byte encoding
//! ([`Number::sort_key`]) so SQLite's `memcmp` order on a BLOB column is numeric order and a
//! Query is an index range scan. Arithmetic (`SET a = a + :n`, `ADD`) is exact decimal
//! addition. Answers carry the canonical form DynamoDB answers with: no exponent, no leading or
//! trailing zeros (`"1.50"` comes back as `"1.5"`, `"1E+2"` as `"100"`).

use std::cmp::Ordering;

/// Most significant digits a number may have.
pub const MAX_DIGITS: usize = 38;
/// Largest decimal exponent `e` of `0.d1d2.. x 10^e` (magnitude below 10^126).
const MAX_EXP: i32 = 126;
/// Smallest exponent (magnitude at least 1E-130).
const MIN_EXP: i32 = -129;

/// Why a string is not a DynamoDB number; the texts are DynamoDB's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("The parameter cannot be converted to a numeric value: {0}")]
    NotNumeric(String),
    #[error("Attempting to store more than 38 significant digits in a Number")]
    TooPrecise,
    #[error("Number overflow. Attempting to store a number with magnitude larger than supported range")]
    Overflow,
    #[error("Number underflow. Attempting to store a number with magnitude smaller than supported range")]
    Underflow,
}

/// A decimal `(-1)^neg x 0.d1d2..dn x 10^exp` with `d1 != 0` and `dn != 0`; zero has no digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Number {
    neg: bool,
    digits: Vec<u8>,
    exp: i32,
}

impl Number {
    pub fn zero() -> Self {
        Self {
            neg: false,
            digits: Vec::new(),
            exp: 0,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// Parses DynamoDB's number syntax: an optional sign, digits with an optional point, an
    /// optional exponent (`-1.5e3`).
    pub fn parse(s: &str) -> Result<Self, NumberError> {
        let bad = || NumberError::NotNumeric(s.chars().take(100).collect());
        let b = s.as_bytes();
        let mut i = 0;
        let mut neg = false;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            neg = b[i] == b'-';
            i += 1;
        }
        let mut digits = Vec::new();
        let mut point: Option<i64> = None;
        let mut seen_digit = false;
        while i < b.len() {
            match b[i] {
                c @ b'0'..=b'9' => {
                    digits.push(c - b'0');
                    seen_digit = true;
                }
                b'.' if point.is_none() => point = Some(digits.len() as i64),
                _ => break,
            }
            i += 1;
        }
        if !seen_digit {
            return Err(bad());
        }
        let mut e10: i64 = 0;
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            i += 1;
            let mut eneg = false;
            if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                eneg = b[i] == b'-';
                i += 1;
            }
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                e10 = (e10 * 10 + i64::from(b[i] - b'0')).min(1_000_000);
                i += 1;
            }
            if i == start {
                return Err(bad());
            }
            if eneg {
                e10 = -e10;
            }
        }
        if i != b.len() {
            return Err(bad());
        }
        let point = point.unwrap_or(digits.len() as i64);
        Self::normalized(neg, digits, point + e10)
    }

    /// `0.digits x 10^exp`, with leading and trailing zeros removed and the limits checked.
    fn normalized(neg: bool, mut digits: Vec<u8>, mut exp: i64) -> Result<Self, NumberError> {
        let lead = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..lead);
        exp -= lead as i64;
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return Ok(Self::zero());
        }
        if digits.len() > MAX_DIGITS {
            return Err(NumberError::TooPrecise);
        }
        if exp > i64::from(MAX_EXP) {
            return Err(NumberError::Overflow);
        }
        if exp < i64::from(MIN_EXP) {
            return Err(NumberError::Underflow);
        }
        Ok(Self {
            neg,
            digits,
            exp: exp as i32,
        })
    }

    pub fn neg(&self) -> Self {
        let mut n = self.clone();
        n.neg = !n.neg && !n.is_zero();
        n
    }

    /// Exact `self + other`.
    pub fn add(&self, other: &Self) -> Result<Self, NumberError> {
        if self.is_zero() {
            return Ok(other.clone());
        }
        if other.is_zero() {
            return Ok(self.clone());
        }
        // Align both on the powers of ten from `top - 1` down to `low`.
        let low = |n: &Self| n.exp - n.digits.len() as i32;
        let top = self.exp.max(other.exp);
        let bottom = low(self).min(low(other));
        let width = (top - bottom) as usize;
        let aligned = |n: &Self| {
            let mut v = vec![0u8; width];
            let start = (top - n.exp) as usize;
            v[start..start + n.digits.len()].copy_from_slice(&n.digits);
            v
        };
        let (a, b) = (aligned(self), aligned(other));
        let (neg, mut out) = if self.neg == other.neg {
            let mut out = vec![0u8; width + 1];
            let mut carry = 0;
            for i in (0..width).rev() {
                let s = a[i] + b[i] + carry;
                out[i + 1] = s % 10;
                carry = s / 10;
            }
            out[0] = carry;
            (self.neg, out)
        } else {
            let (big, small, neg) = match a.cmp(&b) {
                Ordering::Equal => return Ok(Self::zero()),
                Ordering::Greater => (&a, &b, self.neg),
                Ordering::Less => (&b, &a, other.neg),
            };
            let mut out = vec![0u8; width + 1];
            let mut borrow = 0i8;
            for i in (0..width).rev() {
                let mut d = big[i] as i8 - small[i] as i8 - borrow;
                borrow = i8::from(d < 0);
                if d < 0 {
                    d += 10;
                }
                out[i + 1] = d as u8;
            }
            (neg, out)
        };
        out.shrink_to_fit();
        Self::normalized(neg, out, i64::from(top) + 1)
    }

    pub fn sub(&self, other: &Self) -> Result<Self, NumberError> {
        self.add(&other.neg())
    }

    /// Bytes whose lexicographic order is the numbers' order: `0x00` and the complemented
    /// exponent and digits (ended by `0xff`, so a longer negative sorts first) for negatives,
    /// `0x01` for zero, `0x02`, the exponent and the digits for positives.
    pub fn sort_key(&self) -> Vec<u8> {
        if self.is_zero() {
            return vec![0x01];
        }
        let e = (self.exp + 1000) as u16;
        let mut out = Vec::with_capacity(self.digits.len() + 4);
        if self.neg {
            out.push(0x00);
            out.extend_from_slice(&(!e).to_be_bytes());
            out.extend(self.digits.iter().map(|d| 9 - d));
            out.push(0xff);
        } else {
            out.push(0x02);
            out.extend_from_slice(&e.to_be_bytes());
            out.extend_from_slice(&self.digits);
        }
        out
    }

    /// The value as an `f64` (for TTL seconds and sizes; not for comparisons).
    pub fn to_f64(&self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Self) -> Ordering {
        let sign = |n: &Self| {
            if n.is_zero() {
                0
            } else if n.neg {
                -1
            } else {
                1
            }
        };
        match sign(self).cmp(&sign(other)) {
            Ordering::Equal => {}
            o => return o,
        }
        let magnitude = self.exp.cmp(&other.exp).then_with(|| self.digits.cmp(&other.digits));
        if self.neg {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        let mut s = String::with_capacity(self.digits.len() + 8);
        if self.neg {
            s.push('-');
        }
        let ds: String = self.digits.iter().map(|d| char::from(b'0' + d)).collect();
        let len = self.digits.len() as i32;
        if self.exp <= 0 {
            s.push_str("0.");
            s.extend(std::iter::repeat_n('0', (-self.exp) as usize));
            s.push_str(&ds);
        } else if self.exp >= len {
            s.push_str(&ds);
            s.extend(std::iter::repeat_n('0', (self.exp - len) as usize));
        } else {
            s.push_str(&ds[..self.exp as usize]);
            s.push('.');
            s.push_str(&ds[self.exp as usize..]);
        }
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Number {
        Number::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn canonical_forms() {
        for (input, want) in [
            ("0", "0"),
            ("-0", "0"),
            ("000.000", "0"),
            ("1.50", "1.5"),
            ("+7", "7"),
            ("1E+2", "100"),
            ("1.5e-3", "0.0015"),
            ("-12.340", "-12.34"),
            ("0012", "12"),
            (".5", "0.5"),
            ("5.", "5"),
            (
                "12345678901234567890123456789012345678",
                "12345678901234567890123456789012345678",
            ),
            ("1E125", &format!("1{}", "0".repeat(125))),
        ] {
            assert_eq!(n(input).to_string(), want, "{input}");
        }
    }

    #[test]
    fn refusals() {
        for bad in [
            "", "-", "abc", "1.2.3", "1e", "1e+", "NaN", "Infinity", " 1", "1 ", "0x10", ".",
        ] {
            assert!(matches!(Number::parse(bad), Err(NumberError::NotNumeric(_))), "{bad:?}");
        }
        assert_eq!(
            Number::parse("123456789012345678901234567890123456789"),
            Err(NumberError::TooPrecise)
        );
        assert_eq!(Number::parse("1E126"), Err(NumberError::Overflow));
        assert_eq!(Number::parse("1E-131"), Err(NumberError::Underflow));
        assert!(Number::parse("1E-130").is_ok());
        assert!(Number::parse(&"9".repeat(38)).is_ok());
    }

    #[test]
    fn numeric_order_and_encoding_agree() {
        let sorted = [
            "-1E125",
            "-100",
            "-10",
            "-9.5",
            "-9",
            "-1.25",
            "-1.2",
            "-1",
            "-0.5",
            "-1E-130",
            "0",
            "1E-130",
            "0.001",
            "0.5",
            "1",
            "1.2",
            "1.25",
            "9",
            "9.5",
            "10",
            "10.000001",
            "100",
            "12345678901234567890123456789012345678",
            "1E125",
        ];
        for (i, a) in sorted.iter().enumerate() {
            for (j, b) in sorted.iter().enumerate() {
                let (x, y) = (n(a), n(b));
                assert_eq!(x.cmp(&y), i.cmp(&j), "{a} vs {b}");
                assert_eq!(x.sort_key().cmp(&y.sort_key()), i.cmp(&j), "encoded {a} vs {b}");
            }
        }
        assert_eq!(n("1.0").cmp(&n("1")), Ordering::Equal);
        assert_eq!(n("1.0").sort_key(), n("1").sort_key());
    }

    #[test]
    fn exact_arithmetic() {
        for (a, b, sum) in [
            ("1", "2", "3"),
            ("0.1", "0.2", "0.3"),
            ("9.99", "0.01", "10"),
            ("-5", "3", "-2"),
            ("5", "-5", "0"),
            ("100", "-0.001", "99.999"),
            ("-1.5", "-1.5", "-3"),
            ("0", "-7", "-7"),
            (
                "99999999999999999999999999999999999999",
                "-1",
                "99999999999999999999999999999999999998",
            ),
        ] {
            assert_eq!(n(a).add(&n(b)).unwrap().to_string(), sum, "{a} + {b}");
        }
        assert_eq!(n("10").sub(&n("0.5")).unwrap().to_string(), "9.5");
        assert_eq!(
            n("99999999999999999999999999999999999999").add(&n("0.1")),
            Err(NumberError::TooPrecise)
        );
    }
}
