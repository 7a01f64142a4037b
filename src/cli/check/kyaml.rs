//! YAML as Kubernetes clients read it: `sigs.k8s.io/yaml` `YAMLToJSON` (what `kubectl` and
//! Helm send to the apiserver), which decodes with go-yaml v2 and so with YAML 1.1 scalars.
//!
//! A plain (unquoted) scalar is resolved by go-yaml v2's `resolve()`
//! (`sigs.k8s.io/yaml/goyaml.v2/resolve.go`), not by YAML 1.2's core schema: `yes`, `on`, `y`
//! are `true`; `1_000` is `1000`; `017` is octal `15` while `08` is the float `8`; `0o17`,
//! `0x10` and `0b11` are integers; `1e3` is the float `1000`; `~`, `null` and nothing are
//! `null`; `.inf` and `.nan` are floats that `encoding/json` then refuses. A quoted or block
//! scalar is always a string. The resulting value is then written as JSON the way
//! `encoding/json` writes it (`convertToJSONableObject` + `json.Marshal`): map keys become
//! strings (`true`, `1`), an integral float is written without a fraction (`1e3` -> `1000`).
//!
//! [`resolve_plain`] is that table; `read` builds the whole document with it, following
//! anchors, aliases and `<<` merge keys as go-yaml v2's decoder does.

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};
use serde_json::{Map, Number, Value};

/// What go-yaml v2 makes of a plain scalar when decoding into `interface{}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Plain {
    Null,
    Bool(bool),
    /// `int`/`int64` (a negative or small value).
    Int(i64),
    /// `uint64` (above `i64::MAX`).
    Uint(u64),
    Float(f64),
    /// Not resolved: the text itself.
    Str,
}

/// go-yaml v2 `resolve("", in)` for a plain scalar (see the module docs), down to the Go
/// `strconv` calls it makes.
pub fn resolve_plain(s: &str) -> Plain {
    // resolveTable: the first byte hints at what the scalar may be.
    let hint = match s.as_bytes().first() {
        None => b'N',
        Some(b'+' | b'-') => b'S',
        Some(b'0'..=b'9') => b'D',
        Some(b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~') => b'M',
        Some(b'.') => b'.',
        Some(_) => return Plain::Str,
    };
    // resolveMap.
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Plain::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Plain::Bool(false);
        }
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        ".nan" | ".NaN" | ".NAN" => return Plain::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Plain::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Plain::Float(f64::NEG_INFINITY),
        _ => {}
    }
    match hint {
        // strconv.ParseFloat(in, 64)
        b'.' => go_parse_float(s).map_or(Plain::Str, Plain::Float),
        b'D' | b'S' => {
            // A timestamp (`2001-12-14`) is kept as its text when decoding into interface{};
            // none of those parses as a number below either.
            let plain: String = s.chars().filter(|&c| c != '_').collect();
            if let Some(i) = go_parse_int(&plain) {
                return Plain::Int(i);
            }
            if let Some(u) = go_parse_uint(&plain) {
                return Plain::Uint(u);
            }
            if yaml_style_float(&plain)
                && let Some(f) = go_parse_float(&plain)
            {
                return Plain::Float(f);
            }
            // The `0b`/`-0b` fallbacks of resolve() are covered by ParseInt's base 0 (Go 1.13+),
            // and a value beyond 64 bits (big.Int) is left as text here (see the notes).
            Plain::Str
        }
        _ => Plain::Str,
    }
}

/// `strconv.ParseInt(s, 0, 64)` (underscores already removed by the caller).
fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let u = go_parse_uint_body(body)?;
    if neg {
        if u <= i64::MAX as u64 + 1 {
            Some((u as i128).wrapping_neg() as i64)
        } else {
            None
        }
    } else {
        i64::try_from(u).ok()
    }
}

/// `strconv.ParseUint(s, 0, 64)`: no sign allowed.
fn go_parse_uint(s: &str) -> Option<u64> {
    go_parse_uint_body(s)
}

/// Base-0 digits: `0x`, `0o`, `0b` prefixes, a leading `0` for octal, else decimal.
fn go_parse_uint_body(s: &str) -> Option<u64> {
    let lower = s.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits) = match lower.as_deref() {
        Some("0x") => (16, &s[2..]),
        Some("0o") => (8, &s[2..]),
        Some("0b") => (2, &s[2..]),
        _ if s.len() > 1 && s.starts_with('0') => (8, &s[1..]),
        _ => (10, s),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// `strconv.ParseFloat(s, 64)` for the decimal forms the callers let through (a leading `.`
/// or [`yaml_style_float`]); Rust's parser agrees with Go's on those. Out of range is an
/// error in Go (`ErrRange`) and infinite here.
fn go_parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    // Rust also reads `inf`/`nan`/`infinity`; Go's forms here always have a digit.
    if !b.iter().any(u8::is_ascii_digit)
        || b.iter()
            .any(|c| c.is_ascii_alphabetic() && *c != b'e' && *c != b'E')
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// The JSON `encoding/json` writes for a resolved plain scalar, or why it refuses.
fn plain_json(text: &str) -> Result<Value, String> {
    Ok(match resolve_plain(text) {
        Plain::Null => Value::Null,
        Plain::Bool(b) => Value::Bool(b),
        Plain::Int(i) => Value::Number(i.into()),
        Plain::Uint(u) => Value::Number(u.into()),
        Plain::Float(f) if !f.is_finite() => {
            return Err(format!(
                "{text:?} is a YAML 1.1 float ({f}) that JSON cannot hold (encoding/json: unsupported value); quote it"
            ));
        }
        // encoding/json writes an integral float without a fraction (`1000`), as an integer
        // would be written; keep it an integer so integer fields accept it as Go's do.
        Plain::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Value::Number((f as i64).into()),
        Plain::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Plain::Str => Value::String(text.to_owned()),
    })
}

/// A map key as `sigs.k8s.io/yaml` `convertToJSONableObject` turns it into a string.
fn key_string(v: Value, text: &str) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) if n.is_i64() => Ok(n.to_string()),
        // Go formats float keys with 'g' at 32 bits; plain decimals agree.
        Value::Number(n) if n.is_f64() => Ok(n.to_string()),
        _ => Err(format!("unsupported map key {text:?}")),
    }
}

/// An error reading a document, with its 1-based line within the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub line: usize,
    pub message: String,
}

impl ReadError {
    fn at(span: &Span, message: String) -> ReadError {
        ReadError {
            line: span.start.line(),
            message,
        }
    }
}

impl From<ScanError> for ReadError {
    fn from(e: ScanError) -> Self {
        ReadError {
            line: e.marker().line(),
            message: e.info().to_owned(),
        }
    }
}

/// At most this many values may be built from one document, aliases expanded (go-yaml v2
/// refuses "excessive aliasing" too): a few aliases of aliases cannot blow up memory.
const MAX_VALUES: usize = 1_000_000;

/// Sequences and mappings may nest this deep, as in go-yaml v2's scanner (`max_flow_level`
/// and `max_indents` in `scannerc.go`, the CVE-2019-11254 hardening kubectl and Helm read
/// YAML with): "exceeded max depth of 10000". Deeper input is an input error, not a stack
/// overflow; `check::run` gives the reader a stack that holds this depth. Counted here: the
/// collections nested in each other, which is go-yaml's count for flow collections and for
/// block ones indented under their key; a block sequence at its key's own column (an
/// indentless sequence) is a level go-yaml does not count, so such a document is refused one
/// level earlier than go-yaml would refuse it.
pub const MAX_DEPTH: usize = 10_000;

struct Reader<'i> {
    parser: Parser<'i, saphyr_parser::StrInput<'i>>,
    anchors: std::collections::HashMap<usize, Value>,
    built: usize,
    depth: usize,
}

/// Reads one YAML document (the first of `text`) as `sigs.k8s.io/yaml.YAMLToJSON` does.
/// An empty document is `null`.
pub fn read(text: &str) -> Result<Value, ReadError> {
    let mut r = Reader {
        parser: Parser::new_from_str(text),
        anchors: Default::default(),
        built: 0,
        depth: 0,
    };
    loop {
        let (ev, span) = r.next()?;
        match ev {
            Event::StreamStart | Event::DocumentStart(_) | Event::Nothing => continue,
            Event::StreamEnd | Event::DocumentEnd => return Ok(Value::Null),
            ev => return r.value(ev, span),
        }
    }
}

impl<'i> Reader<'i> {
    fn next(&mut self) -> Result<(Event<'i>, Span), ReadError> {
        match self.parser.next_event() {
            Some(r) => Ok(r?),
            None => Ok((Event::StreamEnd, Span::default())),
        }
    }

    fn count(&mut self, span: &Span) -> Result<(), ReadError> {
        self.built += 1;
        if self.built > MAX_VALUES {
            return Err(ReadError::at(
                span,
                format!("more than {MAX_VALUES} values once aliases are expanded"),
            ));
        }
        Ok(())
    }

    fn remember(&mut self, anchor: usize, v: &Value) {
        if anchor > 0 {
            self.anchors.insert(anchor, v.clone());
        }
    }

    fn value(&mut self, ev: Event<'i>, span: Span) -> Result<Value, ReadError> {
        self.count(&span)?;
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let v =
                    scalar(&text, style, tag.as_deref()).map_err(|m| ReadError::at(&span, m))?;
                self.remember(anchor, &v);
                Ok(v)
            }
            Event::Alias(id) => {
                let v =
                    self.anchors.get(&id).cloned().ok_or_else(|| {
                        ReadError::at(&span, "alias to an unknown anchor".to_owned())
                    })?;
                self.built += approx_size(&v);
                self.count(&span)?;
                Ok(v)
            }
            Event::SequenceStart(anchor, _) => self.nested(&span, |r| r.sequence(anchor)),
            Event::MappingStart(anchor, _) => self.nested(&span, |r| r.mapping(anchor)),
            Event::StreamEnd | Event::DocumentEnd => Ok(Value::Null),
            _ => Err(ReadError::at(&span, "unexpected YAML event".to_owned())),
        }
    }

    /// Reads a sequence or mapping one level deeper, refusing to go past [`MAX_DEPTH`].
    fn nested(
        &mut self,
        span: &Span,
        read: impl FnOnce(&mut Self) -> Result<Value, ReadError>,
    ) -> Result<Value, ReadError> {
        if self.depth >= MAX_DEPTH {
            return Err(ReadError::at(
                span,
                format!("exceeded max depth of {MAX_DEPTH}"),
            ));
        }
        self.depth += 1;
        let v = read(self);
        self.depth -= 1;
        v
    }

    /// The items of a sequence, up to its end.
    fn sequence(&mut self, anchor: usize) -> Result<Value, ReadError> {
        let mut items = Vec::new();
        loop {
            let (ev, span) = self.next()?;
            match ev {
                Event::SequenceEnd => break,
                ev => items.push(self.value(ev, span)?),
            }
        }
        let v = Value::Array(items);
        self.remember(anchor, &v);
        Ok(v)
    }

    /// The entries of a mapping, up to its end, with `<<` merge keys.
    fn mapping(&mut self, anchor: usize) -> Result<Value, ReadError> {
        let mut map = Map::new();
        loop {
            let (ev, kspan) = self.next()?;
            if matches!(ev, Event::MappingEnd) {
                break;
            }
            let merge = matches!(&ev, Event::Scalar(t, ScalarStyle::Plain, _, None) if t == "<<");
            let key_text = match &ev {
                Event::Scalar(t, ..) => t.to_string(),
                _ => String::new(),
            };
            let key = self.value(ev, kspan)?;
            let (vev, vspan) = self.next()?;
            let value = self.value(vev, vspan)?;
            if merge {
                // go-yaml v2 `merge`: a mapping, or a list of them where earlier ones win;
                // its keys are set in order with the others (a later key wins).
                let maps: Vec<Value> = match value {
                    Value::Array(list) => list.into_iter().rev().collect(),
                    v => vec![v],
                };
                for m in maps {
                    match m {
                        Value::Object(m) => map.extend(m),
                        _ => {
                            return Err(ReadError::at(
                                &kspan,
                                "map merge requires map or sequence of maps as the value"
                                    .to_owned(),
                            ));
                        }
                    }
                }
                continue;
            }
            if key.is_object() || key.is_array() {
                return Err(ReadError::at(
                    &kspan,
                    "a map key must be a scalar".to_owned(),
                ));
            }
            let key = key_string(key, &key_text).map_err(|m| ReadError::at(&kspan, m))?;
            // Duplicate keys: go-yaml v2 (non-strict, as YAMLToJSON) keeps the last.
            map.insert(key, value);
        }
        let v = Value::Object(map);
        self.remember(anchor, &v);
        Ok(v)
    }
}

/// A rough count of the values in `v` (for [`MAX_VALUES`]).
fn approx_size(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(approx_size).sum::<usize>(),
        Value::Object(m) => 1 + m.values().map(|v| 1 + approx_size(v)).sum::<usize>(),
        _ => 1,
    }
}

/// One scalar: quoted and block scalars are strings; a plain one is resolved; an explicit
/// core-schema tag (`!!str`, `!!int`, ...) decides as go-yaml v2 lets it.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(tag) = tag {
        if tag.is_yaml_core_schema() && tag.suffix == "str" {
            return Ok(Value::String(text.to_owned()));
        }
        if tag.is_yaml_core_schema() {
            return plain_json(text);
        }
        // A tag go-yaml does not resolve: the text.
        return Ok(Value::String(text.to_owned()));
    }
    match style {
        ScalarStyle::Plain => plain_json(text),
        _ => Ok(Value::String(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    /// `sigs.k8s.io/yaml/goyaml.v2/resolve.go:resolve` (resolveMap, resolveTable, the
    /// `strconv.ParseInt(plain, 0, 64)` / `ParseUint` / `yamlStyleFloat` + `ParseFloat`
    /// chain), case by case.
    #[rstest]
    // resolveMap: YAML 1.1 booleans and nulls.
    #[case::y("y", Plain::Bool(true))]
    #[case::yes_upper("YES", Plain::Bool(true))]
    #[case::on("on", Plain::Bool(true))]
    #[case::true_title("True", Plain::Bool(true))]
    #[case::n("n", Plain::Bool(false))]
    #[case::no("No", Plain::Bool(false))]
    #[case::off("OFF", Plain::Bool(false))]
    #[case::tilde("~", Plain::Null)]
    #[case::empty("", Plain::Null)]
    #[case::null_title("Null", Plain::Null)]
    #[case::mixed_case_is_text("yEs", Plain::Str)]
    #[case::odd_case_true_is_text("tRUE", Plain::Str)]
    // ParseInt(plain, 0, 64) after removing every `_`.
    #[case::underscores("1_000", Plain::Int(1000))]
    #[case::underscores_anywhere("1__0_", Plain::Int(10))]
    #[case::hex("0x10", Plain::Int(16))]
    #[case::hex_upper("0X1F", Plain::Int(31))]
    #[case::octal_0o("0o17", Plain::Int(15))]
    #[case::octal_leading_zero("017", Plain::Int(15))]
    #[case::binary("0b101", Plain::Int(5))]
    #[case::negative_binary("-0b101", Plain::Int(-5))]
    #[case::plus("+12", Plain::Int(12))]
    #[case::minus_hex("-0x10", Plain::Int(-16))]
    #[case::zero("0", Plain::Int(0))]
    #[case::i64_min("-9223372036854775808", Plain::Int(i64::MIN))]
    // ParseUint: above int64.
    #[case::u64("18446744073709551615", Plain::Uint(u64::MAX))]
    // Not an octal number, but yamlStyleFloat + ParseFloat.
    #[case::eight_with_zero("08", Plain::Float(8.0))]
    #[case::exp("1e3", Plain::Float(1000.0))]
    #[case::exp_neg("5E-1", Plain::Float(0.5))]
    #[case::decimal("1.5", Plain::Float(1.5))]
    #[case::trailing_dot("1.", Plain::Float(1.0))]
    #[case::leading_dot(".5", Plain::Float(0.5))]
    #[case::underscore_float("1_0.5", Plain::Float(10.5))]
    #[case::too_big_for_u64("99999999999999999999", Plain::Float(1e20))]
    // Text: units, sexagesimal (dropped by go-yaml), hex floats, words.
    #[case::quantity("500Mi", Plain::Str)]
    #[case::sexagesimal("1:20", Plain::Str)]
    #[case::hex_float("0x1p-2", Plain::Str)]
    #[case::dot_word(".5Gi", Plain::Str)]
    #[case::inf_word("inf", Plain::Str)]
    #[case::timestamp("2001-12-14", Plain::Str)]
    #[case::underscore_first("_1", Plain::Str)]
    #[case::lone_sign("-", Plain::Str)]
    #[case::hex_no_digits("0x", Plain::Str)]
    #[case::version("1.2.3", Plain::Str)]
    fn resolves_plain_scalars_as_go_yaml_v2(#[case] text: &str, #[case] want: Plain) {
        assert_eq!(resolve_plain(text), want, "{text:?}");
    }

    #[test]
    fn special_floats() {
        assert!(matches!(resolve_plain(".nan"), Plain::Float(f) if f.is_nan()));
        assert_eq!(resolve_plain(".Inf"), Plain::Float(f64::INFINITY));
        assert_eq!(resolve_plain("-.inf"), Plain::Float(f64::NEG_INFINITY));
        // encoding/json refuses them: kubectl cannot send such a document.
        assert!(read("a: .inf\n").is_err());
    }

    /// `sigs.k8s.io/yaml.YAMLToJSON`: scalars resolved as above, quoted ones kept as text,
    /// keys made strings, integral floats written as integers (`encoding/json`).
    #[test]
    fn documents_become_the_json_kubectl_sends() {
        let doc = "a: 1_000\nb: '1_000'\nc: 1e3\nd: yes\ne: \"yes\"\nf: ~\ng:\nh: 017\ni: 0o17\nj: 0x10\nk: 1.5\nl: 500Mi\nm: |\n  017\non: 1\n1: x\n";
        assert_eq!(
            read(doc).unwrap(),
            json!({"a": 1000, "b": "1_000", "c": 1000, "d": true, "e": "yes", "f": null,
                   "g": null, "h": 15, "i": 15, "j": 16, "k": 1.5, "l": "500Mi", "m": "017\n",
                   "true": 1, "1": "x"})
        );
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let doc = "base: &b {medium: Memory, sizeLimit: 1Gi}\nvol:\n  <<: *b\n  sizeLimit: 2Gi\nlist: [*b]\n";
        let v = read(doc).unwrap();
        assert_eq!(v["vol"], json!({"medium": "Memory", "sizeLimit": "2Gi"}));
        assert_eq!(v["list"][0]["sizeLimit"], "1Gi");
        // Keys written before `<<` are overwritten by the merged map (go-yaml v2 order).
        let v = read("a: &a {x: 1}\nb: {x: 2, <<: *a}\n").unwrap();
        assert_eq!(v["b"]["x"], 1);
        assert_eq!(read("a: *nope\n").unwrap_err().line, 1);
    }

    #[test]
    fn errors_have_lines_and_aliases_are_bounded() {
        let e = read("a: 1\nb: [\n").unwrap_err();
        assert!(e.line >= 2, "{e:?}");
        // A billion laughs is refused, not expanded.
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(read(&doc).is_err());
        assert_eq!(read("").unwrap(), Value::Null);
        assert_eq!(read("# only a comment\n").unwrap(), Value::Null);
    }
}
