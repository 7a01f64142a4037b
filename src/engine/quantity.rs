//! Exact Kubernetes quantities.
//!
//! Parsing is `kube_quantity`'s (the Kubernetes grammar: `500Mi`, `10G`, `1.5e10`, `100m`).
//! Comparison and sums are done here on the parsed value as an exact `rust_decimal` amount of
//! base units, with checked arithmetic: `kube_quantity`'s own cross-unit comparison goes
//! through `f32` factors (so `1Ei` vs `1E18` is approximate) and its scale normalisation
//! panics on overflow, neither of which an admission webhook may do on user input.

use std::fmt;
use std::str::FromStr;

use kube_quantity::ParsedQuantity;
use rust_decimal::Decimal;

/// A quantity reduced to an exact amount of base units (bytes for storage and memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(Decimal);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("{0:?} is not a valid quantity (expected e.g. 500Mi, 10Gi, 1G, 1.5e9)")]
    Invalid(String),
    #[error("{0:?} is too large to compare exactly")]
    Overflow(String),
}

impl Quantity {
    pub const ZERO: Quantity = Quantity(Decimal::ZERO);

    /// Parses a quantity and reduces it to exact base units.
    ///
    /// The common shape, an integer with an optional unit suffix (`500Mi`, `10G`, `1024`), is
    /// read directly; everything else (fractions, exponents, milli-units, signs) takes the
    /// general path. A test checks both paths agree on every integer-with-suffix form.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        match Self::parse_plain_integer(s) {
            Some(q) => Ok(q),
            None => Self::parse_general(s),
        }
    }

    /// `<digits><suffix>` with at most 18 digits, else `None`.
    fn parse_plain_integer(s: &str) -> Option<Self> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 18 {
            return None;
        }
        let value: u64 = s[..digits].parse().ok()?;
        let factor: u64 = match &s[digits..] {
            "" => 1,
            "k" => 1_000,
            "M" => 1_000_000,
            "G" => 1_000_000_000,
            "T" => 1_000_000_000_000,
            "P" => 1_000_000_000_000_000,
            "E" => 1_000_000_000_000_000_000,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            "Pi" => 1 << 50,
            "Ei" => 1 << 60,
            _ => return None,
        };
        Decimal::from(value)
            .checked_mul(Decimal::from(factor))
            .map(Quantity)
    }

    /// The general grammar: `kube_quantity` decides what is a valid quantity, and the value
    /// is then computed exactly from the text with `rust_decimal` (kube_quantity goes through
    /// `f64`, so `10737418240.0000001` would compare equal to `10Gi`).
    pub fn parse_general(s: &str) -> Result<Self, QuantityError> {
        let invalid = || QuantityError::Invalid(s.to_owned());
        let overflow = || QuantityError::Overflow(s.to_owned());
        let trimmed = s.trim();
        if trimmed.is_empty() || trimmed.len() > 64 {
            return Err(invalid());
        }
        // A bare suffix ("Gi") parses as zero in kube_quantity; Kubernetes rejects it.
        if !trimmed.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) {
            return Err(invalid());
        }
        // kube_quantity reads the `E`/`Ei` (exa) suffixes as a dangling exponent; ask it about
        // `<n>P` (`<n>Pi`) instead, which has the same grammar.
        let number_before =
            |n: &str| !n.is_empty() && n.ends_with(|c: char| c.is_ascii_digit() || c == '.');
        let grammar_text = if let Some(n) = trimmed.strip_suffix("Ei").filter(|n| number_before(n))
        {
            format!("{n}Pi")
        } else if let Some(n) = trimmed.strip_suffix('E').filter(|n| number_before(n)) {
            format!("{n}P")
        } else {
            trimmed.to_owned()
        };
        ParsedQuantity::try_from(grammar_text.as_str()).map_err(|_| invalid())?;

        let (number, scale) = split_suffix(trimmed).ok_or_else(invalid)?;
        let number = number.strip_prefix('+').unwrap_or(number);
        let mut text = String::with_capacity(number.len() + 2);
        if let Some(rest) = number.strip_prefix('-') {
            text.push('-');
            if rest.starts_with('.') {
                text.push('0');
            }
            text.push_str(rest);
        } else {
            if number.starts_with('.') {
                text.push('0');
            }
            text.push_str(number);
        }
        if text.ends_with('.') {
            text.push('0');
        }
        let value = Decimal::from_str_exact(&text).map_err(|e| match e {
            rust_decimal::Error::ErrorString(_) => invalid(),
            _ => overflow(),
        })?;
        match scale {
            Scale::Times(factor) => exact_mul(value, Decimal::from(factor)),
            Scale::Pow10(exp) if exp >= 0 => {
                let factor =
                    (0..exp).try_fold(Decimal::ONE, |acc, _| acc.checked_mul(Decimal::TEN));
                factor.and_then(|f| exact_mul(value, f))
            }
            Scale::Pow10(exp) => {
                let new_scale = value.scale() + exp.unsigned_abs();
                (new_scale <= 28)
                    .then(|| Decimal::from_i128_with_scale(value.mantissa(), new_scale))
            }
        }
        .map(Quantity)
        .ok_or_else(overflow)
    }

    pub fn is_positive(&self) -> bool {
        self.0 > Decimal::ZERO
    }

    /// Exact sum; `None` if it would overflow or need rounding (treated as "too large").
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        let sum = self.0.checked_add(other.0)?;
        let exact =
            sum.checked_sub(other.0) == Some(self.0) && sum.checked_sub(self.0) == Some(other.0);
        exact.then_some(Quantity(sum))
    }
}

/// How a quantity's suffix scales its number.
enum Scale {
    Times(u64),
    Pow10(i32),
}

/// Splits `<number><suffix>` (binary SI, decimal SI or a decimal exponent).
fn split_suffix(s: &str) -> Option<(&str, Scale)> {
    const BINARY: [(&str, u64); 6] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("Ei", 1 << 60),
    ];
    for (suffix, factor) in BINARY {
        if let Some(n) = s.strip_suffix(suffix) {
            return Some((n, Scale::Times(factor)));
        }
    }
    // A decimal exponent: `e` or `E` followed by a signed integer, after a number.
    if let Some(i) = s.rfind(['e', 'E']) {
        let (n, exp) = (&s[..i], &s[i + 1..]);
        let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        if !n.is_empty() && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let e: i32 = exp.parse().ok().filter(|e: &i32| e.unsigned_abs() <= 28)?;
            return Some((n, Scale::Pow10(e)));
        }
    }
    let decimal = match s.as_bytes().last()? {
        b'n' => Scale::Pow10(-9),
        b'u' => Scale::Pow10(-6),
        b'm' => Scale::Pow10(-3),
        b'k' => Scale::Pow10(3),
        b'M' => Scale::Pow10(6),
        b'G' => Scale::Pow10(9),
        b'T' => Scale::Pow10(12),
        b'P' => Scale::Pow10(15),
        b'E' => Scale::Pow10(18),
        _ => return Some((s, Scale::Times(1))),
    };
    Some((&s[..s.len() - 1], decimal))
}

/// `a * b` only when it is exact (rust_decimal rounds products that need more than 28
/// significant digits; dividing back detects it).
fn exact_mul(a: Decimal, b: Decimal) -> Option<Decimal> {
    let p = a.checked_mul(b)?;
    (p.checked_div(b) == Some(a)).then_some(p)
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

/// Human form for messages: the unit (binary or decimal) that writes the amount exactly with
/// the fewest digits, so `10Gi` prints as `10Gi`, `10G` as `10G`, `1536Mi` as `1536Mi`.
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 12] = [
            ("Ei", 1 << 60),
            ("Pi", 1 << 50),
            ("Ti", 1 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
            ("E", 1_000_000_000_000_000_000),
            ("P", 1_000_000_000_000_000),
            ("T", 1_000_000_000_000),
            ("G", 1_000_000_000),
            ("M", 1_000_000),
            ("k", 1_000),
        ];
        let v = self.0.normalize();
        let mut best = (v.to_string(), "");
        if v.fract().is_zero() && !v.is_zero() {
            for (unit, size) in UNITS {
                let d = Decimal::from(size);
                if (v % d).is_zero() {
                    let n = (v / d).normalize().to_string();
                    if n.len() < best.0.len() {
                        best = (n, unit);
                    }
                }
            }
        }
        write!(f, "{}{}", best.0, best.1)
    }
}

impl<'de> serde::Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = crate::engine::model::RawQuantity::deserialize(d)?;
        Quantity::parse(&raw.0).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A quantity that must be above zero (a policy maximum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct PositiveQuantity(Quantity);

impl PositiveQuantity {
    /// For defaults written in the source; panics on a literal that is not positive.
    pub fn from_literal(s: &str) -> Self {
        let q = Quantity::parse(s).expect("literal quantity");
        assert!(q.is_positive(), "literal quantity must be positive");
        PositiveQuantity(q)
    }
}

impl std::ops::Deref for PositiveQuantity {
    type Target = Quantity;
    fn deref(&self) -> &Quantity {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for PositiveQuantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let q = Quantity::deserialize(d)?;
        if q.is_positive() {
            Ok(PositiveQuantity(q))
        } else {
            Err(serde::de::Error::custom(format_args!(
                "must be positive, got {q}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[rstest]
    #[case::binary_units_equal("10240Mi", "10Gi")]
    #[case::plain_bytes("1073741824", "1Gi")]
    #[case::decimal_units("1000M", "1G")]
    #[case::exponent("1.5e10", "15G")]
    #[case::fraction("1.5Gi", "1536Mi")]
    #[case::milli("1000m", "1")]
    fn equal(#[case] a: &str, #[case] b: &str) {
        assert_eq!(q(a), q(b));
    }

    #[rstest]
    #[case::decimal_below_binary("10G", "10Gi")]
    #[case::one_byte_below("10737418239", "10Gi")]
    #[case::exa_units("1E", "1Ei")]
    fn less(#[case] a: &str, #[case] b: &str) {
        assert!(q(a) < q(b), "{a} < {b}");
    }

    #[test]
    fn exponent_is_above_ten_gibibytes() {
        assert!(q("1.5e10") > q("10Gi"));
    }

    #[rstest]
    #[case::word("abc")]
    #[case::empty("")]
    #[case::bare_suffix("Gi")]
    #[case::bad_suffix("10Gb")]
    #[case::space_inside("10 Gi")]
    #[case::nan("NaN")]
    #[case::inf("inf")]
    #[case::sign_only("-")]
    #[case::dot_only(".")]
    fn invalid(#[case] s: &str) {
        assert!(Quantity::parse(s).is_err(), "{s} should be invalid");
    }

    #[test]
    fn huge_values_do_not_panic() {
        for s in [
            "79228162514264337593543950335Ei",
            "9e28E",
            "1e300",
            "99999999999999999999Ei",
        ] {
            let _ = Quantity::parse(s);
        }
        let big = Quantity::parse("70000000000Ei");
        if let Ok(b) = big {
            assert!(b.checked_add(b).is_none() || b.checked_add(b).unwrap() > b);
        }
    }

    #[test]
    fn fast_path_agrees_with_kube_quantity() {
        let suffixes = [
            "", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
        ];
        let values = [
            0u64,
            1,
            7,
            10,
            500,
            1000,
            1023,
            1024,
            10240,
            65536,
            999_999,
            123_456_789,
            10_000_000_000,
        ];
        for suffix in suffixes {
            for v in values {
                let s = format!("{v}{suffix}");
                let fast = Quantity::parse_plain_integer(&s)
                    .unwrap_or_else(|| panic!("{s} not on the fast path"));
                assert_eq!(Ok(fast), Quantity::parse_general(&s), "{s}");
            }
        }
        for not_fast in [
            "1.5Gi",
            "1e3",
            "-1",
            "+1",
            "100m",
            " 1Gi",
            "1Gb",
            "1234567890123456789",
        ] {
            assert!(
                Quantity::parse_plain_integer(not_fast).is_none(),
                "{not_fast}"
            );
        }
    }

    #[test]
    fn display_reads_back_exactly() {
        for s in [
            ".1Ei",
            "4337555593263n",
            "1.5Gi",
            "10G",
            "100m",
            "123456789012345678901234567",
            "-2Ki",
        ] {
            let q = Quantity::parse(s).unwrap();
            assert_eq!(
                Quantity::parse(&q.to_string()).unwrap(),
                q,
                "{s} shown as {q}"
            );
        }
    }

    #[test]
    fn fractions_are_exact() {
        assert!(q("10737418240.0000001") > q("10Gi"));
        assert_eq!(q("0.5Gi"), q("512Mi"));
        assert_eq!(q("1e-3"), q("1m"));
        assert_eq!(q("+1k"), q("1000"));
        assert_eq!(q(".5k"), q("500"));
    }

    #[test]
    fn sums_never_round() {
        let a = q("501E");
        assert!(a.checked_add(q("1n")).is_none_or(|s| s > a));
        assert_eq!(q("1Gi").checked_add(q("1Gi")), Some(q("2Gi")));
    }

    #[test]
    fn non_positive() {
        assert!(!q("0").is_positive());
        assert!(!q("-1Gi").is_positive());
        assert!(q("1").is_positive());
    }

    #[test]
    fn display_prefers_exact_binary_units() {
        assert_eq!(q("10Gi").to_string(), "10Gi");
        assert_eq!(q("10240Mi").to_string(), "10Gi");
        assert_eq!(q("1536Mi").to_string(), "1536Mi");
        assert_eq!(q("10G").to_string(), "10G");
        assert_eq!(q("100").to_string(), "100");
    }
}
