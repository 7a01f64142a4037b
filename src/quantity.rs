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
    /// read directly; everything else (fractions, exponents, milli-units, signs) goes through
    /// `kube_quantity`. A test checks both paths agree on every integer-with-suffix form.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        match Self::parse_plain_integer(s) {
            Some(q) => Ok(q),
            None => Self::parse_with_kube_quantity(s),
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

    /// The general grammar, parsed by `kube_quantity`.
    pub fn parse_with_kube_quantity(s: &str) -> Result<Self, QuantityError> {
        let trimmed = s.trim();
        if trimmed.is_empty() || trimmed.len() > 64 {
            return Err(QuantityError::Invalid(s.to_owned()));
        }
        // kube_quantity reads the `E`/`Ei` (exa) suffixes as a dangling exponent; parse `<n>E`
        // as `<n>P` (and `Ei` as `Pi`) and scale by 1000 (1024) below.
        let number_before =
            |n: &str| !n.is_empty() && n.ends_with(|c: char| c.is_ascii_digit() || c == '.');
        let (text, exa) = if let Some(n) = trimmed.strip_suffix("Ei").filter(|n| number_before(n)) {
            (format!("{n}Pi"), 1024u64)
        } else if let Some(n) = trimmed.strip_suffix('E').filter(|n| number_before(n)) {
            (format!("{n}P"), 1000u64)
        } else {
            (trimmed.to_owned(), 1)
        };
        let parsed = ParsedQuantity::try_from(text.as_str())
            .map_err(|_| QuantityError::Invalid(s.to_owned()))?;
        // A bare suffix ("Gi") parses as zero in kube_quantity; Kubernetes rejects it.
        if !trimmed.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) {
            return Err(QuantityError::Invalid(s.to_owned()));
        }
        // ParsedQuantity displays as "<exact decimal><suffix>"; read both parts back.
        let shown = parsed.to_string();
        let split = shown
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '.')))
            .unwrap_or(shown.len());
        let (number, suffix) = shown.split_at(split);
        let value = Decimal::from_str(number).map_err(|_| QuantityError::Invalid(s.to_owned()))?;
        let overflow = || QuantityError::Overflow(s.to_owned());
        let scaled = match suffix {
            "" => Some(value),
            "n" => value.checked_div(Decimal::from(1_000_000_000u64)),
            "u" => value.checked_div(Decimal::from(1_000_000u64)),
            "m" => value.checked_div(Decimal::from(1_000u64)),
            "k" => value.checked_mul(Decimal::from(1_000u64)),
            "M" => value.checked_mul(Decimal::from(1_000_000u64)),
            "G" => value.checked_mul(Decimal::from(1_000_000_000u64)),
            "T" => value.checked_mul(Decimal::from(1_000_000_000_000u64)),
            "P" => value.checked_mul(Decimal::from(1_000_000_000_000_000u64)),
            "E" => value.checked_mul(Decimal::from(1_000_000_000_000_000_000u64)),
            "Ki" => value.checked_mul(Decimal::from(1u64 << 10)),
            "Mi" => value.checked_mul(Decimal::from(1u64 << 20)),
            "Gi" => value.checked_mul(Decimal::from(1u64 << 30)),
            "Ti" => value.checked_mul(Decimal::from(1u64 << 40)),
            "Pi" => value.checked_mul(Decimal::from(1u64 << 50)),
            "Ei" => value.checked_mul(Decimal::from(1u64 << 60)),
            _ => return Err(QuantityError::Invalid(s.to_owned())),
        };
        let scaled = scaled.and_then(|v| v.checked_mul(Decimal::from(exa)));
        scaled.map(Quantity).ok_or_else(overflow)
    }

    pub fn is_positive(&self) -> bool {
        self.0 > Decimal::ZERO
    }

    /// Exact sum; `None` if it would overflow (treated by callers as "too large").
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        self.0.checked_add(other.0).map(Quantity)
    }
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
        let raw = crate::model::RawQuantity::deserialize(d)?;
        Quantity::parse(&raw.0).map_err(serde::de::Error::custom)
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
                assert_eq!(Ok(fast), Quantity::parse_with_kube_quantity(&s), "{s}");
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
