//! Mount path normalisation and reserved-path patterns.

use std::borrow::Cow;
use std::fmt;

/// Normalises a mount path the way the kubelet resolves it: a relative path is made absolute
/// (the kubelet prefixes `/`), `.` segments and repeated or trailing `/` are dropped, and `..`
/// is resolved lexically (clamped at `/`) so `/data/../etc` cannot sneak past a reserved path.
/// An already normal path (the usual case) is borrowed, not copied.
pub fn normalize(path: &str) -> Cow<'_, str> {
    let is_normal = path.starts_with('/')
        && (path.len() == 1 || !path.ends_with('/'))
        && !path.contains("//")
        && !path.contains("/./")
        && !path.contains("/../")
        && !path.ends_with("/.")
        && !path.ends_with("/..");
    if is_normal {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(normalize_slow(path))
    }
}

fn normalize_slow(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::with_capacity(path.len() + 1);
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    out
}

/// True when `inner` lies strictly below `outer` (both normalised): `/data/cache` is inside
/// `/data`, `/database` is not, and a path is not inside itself.
pub fn is_strictly_inside(inner: &str, outer: &str) -> bool {
    if outer == "/" {
        return inner != "/";
    }
    inner.len() > outer.len() && inner.starts_with(outer) && inner.as_bytes()[outer.len()] == b'/'
}

/// A reserved-path entry: `/etc` matches exactly that path, `/proc/**` matches `/proc` and
/// everything below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    base: String,
    recursive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid reserved path (expected an absolute path, optionally ending in /**)")]
pub struct PathPatternError(String);

impl PathPattern {
    pub fn parse(s: &str) -> Result<Self, PathPatternError> {
        let (base, recursive) = match s.strip_suffix("/**") {
            Some(b) => (if b.is_empty() { "/" } else { b }, true),
            None => (s, false),
        };
        if !base.starts_with('/') || base.contains('*') || base.contains('?') {
            return Err(PathPatternError(s.to_owned()));
        }
        Ok(PathPattern {
            base: normalize(base).into_owned(),
            recursive,
        })
    }

    /// `path` must already be normalised.
    pub fn matches(&self, path: &str) -> bool {
        path == self.base || (self.recursive && is_strictly_inside(path, &self.base))
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.recursive, self.base.as_str()) {
            (true, "/") => f.write_str("/**"),
            (true, b) => write!(f, "{b}/**"),
            (false, b) => f.write_str(b),
        }
    }
}

impl<'de> serde::Deserialize<'de> for PathPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PathPattern::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for PathPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::plain("/data", "/data")]
    #[case::relative("data", "/data")]
    #[case::trailing("/data/", "/data")]
    #[case::repeated("//data//cache///", "/data/cache")]
    #[case::dot("/./data/./cache/.", "/data/cache")]
    #[case::dotdot("/data/../etc", "/etc")]
    #[case::dotdot_above_root("/../../etc", "/etc")]
    #[case::root("/", "/")]
    #[case::empty("", "/")]
    fn normalizes(#[case] input: &str, #[case] want: &str) {
        assert_eq!(normalize(input), want);
        assert_eq!(normalize_slow(input), want, "slow path");
    }

    #[rstest]
    #[case::child("/data/cache", "/data", true)]
    #[case::prefix_not_child("/database", "/data", false)]
    #[case::same("/data", "/data", false)]
    #[case::under_root("/data", "/", true)]
    #[case::root_in_root("/", "/", false)]
    #[case::parent("/data", "/data/cache", false)]
    fn inside(#[case] inner: &str, #[case] outer: &str, #[case] want: bool) {
        assert_eq!(is_strictly_inside(inner, outer), want);
    }

    #[rstest]
    #[case::exact("/etc", "/etc", true)]
    #[case::exact_not_child("/etc", "/etc/app", false)]
    #[case::recursive_self("/proc/**", "/proc", true)]
    #[case::recursive_child("/proc/**", "/proc/sys/kernel", true)]
    #[case::recursive_sibling("/proc/**", "/process", false)]
    #[case::root_exact("/", "/", true)]
    #[case::root_exact_child("/", "/data", false)]
    #[case::dev_shm_allowed("/dev", "/dev/shm", false)]
    fn pattern(#[case] pat: &str, #[case] path: &str, #[case] want: bool) {
        assert_eq!(PathPattern::parse(pat).unwrap().matches(path), want);
    }

    #[rstest]
    #[case::relative("etc")]
    #[case::glob_inside("/e*c")]
    #[case::empty("")]
    fn bad_pattern(#[case] pat: &str) {
        assert!(PathPattern::parse(pat).is_err());
    }

    #[test]
    fn pattern_round_trips() {
        for p in ["/", "/**", "/proc/**", "/etc"] {
            assert_eq!(PathPattern::parse(p).unwrap().to_string(), p);
        }
    }
}
