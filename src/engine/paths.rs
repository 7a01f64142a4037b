//! Mount path normalisation (Linux and Windows semantics) and reserved-path patterns.
//!
//! A path gets **Windows** semantics when its Pod says `spec.os.name: windows` (the kubelet
//! refuses such a Pod on another OS: `pkg/kubelet/lifecycle/predicate.go`,
//! `rejectPodAdmissionBasedOnOSField`) or when the path itself starts with a drive letter
//! (`C:`) or a UNC prefix (`\\`); every other path gets **Linux** semantics. A Linux-looking
//! path (`/etc`) in a Pod without `spec.os` stays Linux, so adding one `C:\x` mount cannot
//! switch off the Linux checks of the others.
//!
//! Normalised paths are comparison keys: Linux keys start with `/` (never `//`); Windows keys
//! start with a lower-case drive (`c:/`) or a UNC root (`//server/share`), use `/` as the
//! separator and are lower-cased, so the two styles never collide.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

/// Which path semantics apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathStyle {
    Linux,
    Windows,
}

impl PathStyle {
    /// The style of `path` in a Pod whose own style is `pod`: Windows for a Windows Pod, or
    /// for a path with a drive letter or UNC prefix.
    pub fn of(path: &str, pod: PathStyle) -> PathStyle {
        if pod == PathStyle::Windows || is_windows_path(path) {
            PathStyle::Windows
        } else {
            PathStyle::Linux
        }
    }

    /// The style of an already normalised key (see the module docs).
    pub fn of_normalized(key: &str) -> PathStyle {
        let b = key.as_bytes();
        if b.starts_with(b"//") || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':') {
            PathStyle::Windows
        } else {
            PathStyle::Linux
        }
    }
}

/// A path written the Windows way whatever the Pod: a drive letter (`C:\data`, `c:/data`) or a
/// UNC prefix (`\\server\share`, what the kubelet's `IsWindowsUNCPath` tests).
pub fn is_windows_path(path: &str) -> bool {
    let b = path.as_bytes();
    (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':') || path.starts_with("\\\\")
}

/// Whether the path as written is absolute for its style. Linux: starts with `/`. Windows:
/// a drive letter followed by a separator, a UNC path, or a leading `\` or `/` (the kubelet's
/// Windows `IsAbs`; the container's system drive). `data` and the drive-relative `C:data` are not.
pub fn is_absolute(path: &str, style: PathStyle) -> bool {
    match style {
        PathStyle::Linux => path.starts_with('/'),
        PathStyle::Windows => {
            let b = path.as_bytes();
            if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
                matches!(b.get(2), Some(b'/' | b'\\'))
            } else {
                matches!(b.first(), Some(b'/' | b'\\'))
            }
        }
    }
}

/// Normalises `path` for its style (see [`normalize`] and [`normalize_windows`]).
pub fn normalize_as(path: &str, style: PathStyle) -> Cow<'_, str> {
    match style {
        PathStyle::Linux => normalize(path),
        PathStyle::Windows => Cow::Owned(normalize_windows(path)),
    }
}

/// Normalises `path` in a Pod whose style is `pod` (see [`PathStyle::of`]).
pub fn normalize_in(path: &str, pod: PathStyle) -> Cow<'_, str> {
    normalize_as(path, PathStyle::of(path, pod))
}

/// Normalises a mount path the way the kubelet resolves it: a relative path is made absolute
/// (the kubelet prefixes `/`), `.` segments and repeated or trailing `/` are dropped, and `..`
/// is resolved lexically (clamped at `/`) so `/data/../etc` cannot sneak past a reserved path.
/// An already normal path (the usual case) is borrowed, not copied.
pub fn normalize(path: &str) -> Cow<'_, str> {
    if is_normal(path) {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(normalize_slow(path))
    }
}

/// `/` alone, or `/` followed by segments that are neither empty (`//`, a trailing `/`) nor
/// `.` or `..`: one pass over the bytes (a byte loop: `str::split` costs more per segment
/// than these short paths have bytes).
fn is_normal(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    let mut start = 1;
    for i in 1..=b.len() {
        if i == b.len() || b[i] == b'/' {
            if matches!(&b[start..i], b"" | b"." | b"..") {
                // `/` alone is normal: its one "segment" is the empty rest.
                return b.len() == 1;
            }
            start = i + 1;
        }
    }
    true
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

/// Windows normalisation, as a comparison key: `\` and `/` are the same separator, case does
/// not matter (lower-cased), a path without drive or UNC root is on `c:` (the kubelet's
/// `MakeAbsolutePath` prefixes `c:` or `c:\`), `.` and repeated or trailing separators are
/// dropped and `..` is resolved (clamped at the drive or UNC share root), as Win32 path
/// resolution does. `C:\data`, `c:/data/` and `/data` (in a Windows Pod) are all `c:/data`.
pub fn normalize_windows(path: &str) -> String {
    let lower = path.replace('\\', "/").to_lowercase();
    let b = lower.as_bytes();
    let (mut root, rest) = if let Some(unc) = lower.strip_prefix("//") {
        // UNC: `//server/share` is the root.
        let mut it = unc.split('/').filter(|s| !s.is_empty());
        let mut root = String::from("/");
        for seg in it.by_ref().take(2) {
            root.push('/');
            root.push_str(seg);
        }
        let rest: Vec<&str> = it.collect();
        (root, rest)
    } else if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        (lower[..2].to_owned(), lower[2..].split('/').collect())
    } else {
        ("c:".to_owned(), lower.split('/').collect())
    };
    let mut parts: Vec<&str> = Vec::new();
    for seg in rest {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let unc = root.starts_with("//");
    if parts.is_empty() && !unc {
        root.push('/');
    }
    for p in parts {
        root.push('/');
        root.push_str(p);
    }
    root
}

/// A normalised key as shown in messages: Windows keys with `\` (`c:\data`), Linux unchanged.
pub fn display(key: &str) -> Cow<'_, str> {
    match PathStyle::of_normalized(key) {
        PathStyle::Linux => Cow::Borrowed(key),
        PathStyle::Windows => Cow::Owned(key.replace('/', "\\")),
    }
}

/// True when `inner` lies strictly below `outer` (both normalised, same style): `/data/cache`
/// is inside `/data`, `/database` is not, a path is not inside itself, and a Linux path is never
/// inside a Windows one or the reverse.
pub fn is_strictly_inside(inner: &str, outer: &str) -> bool {
    if PathStyle::of_normalized(inner) != PathStyle::of_normalized(outer) {
        return false;
    }
    if outer.ends_with('/') {
        // A root: `/` or `c:/`.
        return inner.len() > outer.len() && inner.starts_with(outer);
    }
    inner.len() > outer.len() && inner.starts_with(outer) && inner.as_bytes()[outer.len()] == b'/'
}

/// Orders normalised keys so that every path comes right after the paths it is inside of
/// (a pre-order of the directory tree): styles apart, then bytes with `/` lowest. A sort by
/// this order lets `mount-path-nested` find enclosing mounts with one scan.
pub fn tree_cmp(a: &str, b: &str) -> Ordering {
    let rank = |c: u8| if c == b'/' { 0u16 } else { u16::from(c) + 1 };
    PathStyle::of_normalized(a)
        .cmp(&PathStyle::of_normalized(b))
        .then_with(|| {
            let (a, b) = (a.as_bytes(), b.as_bytes());
            let i = mismatch(a, b);
            match (a.get(i), b.get(i)) {
                (Some(&x), Some(&y)) => rank(x).cmp(&rank(y)),
                _ => a.len().cmp(&b.len()),
            }
        })
}

/// The index of the first byte where `a` and `b` differ (the shorter length if one is a
/// prefix of the other), eight bytes at a time: sorted mount paths share long prefixes.
fn mismatch(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().expect("8 bytes"));
        let y = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if x != y {
            return i + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// A reserved-path entry: `/etc` matches exactly that path, `/proc/**` matches `/proc` and
/// everything below it. A Windows entry (see [`WindowsPathPattern`]) matches Windows paths the
/// same way: `C:\Windows\**` matches `c:/windows` and everything below it, in any case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    /// Normalised (a Linux or Windows key).
    base: String,
    recursive: bool,
    /// Windows entries are shown as written (their key is lower-cased).
    written: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid reserved path (expected {1}, optionally ending in {2})")]
pub struct PathPatternError(String, &'static str, &'static str);

impl PathPattern {
    /// A Linux entry: an absolute path, optionally ending in `/**`.
    pub fn parse(s: &str) -> Result<Self, PathPatternError> {
        let (base, recursive) = match s.strip_suffix("/**") {
            Some(b) => (if b.is_empty() { "/" } else { b }, true),
            None => (s, false),
        };
        if !base.starts_with('/') || base.contains('*') || base.contains('?') {
            return Err(PathPatternError(s.to_owned(), "an absolute path", "/**"));
        }
        Ok(PathPattern {
            base: normalize(base).into_owned(),
            recursive,
            written: None,
        })
    }

    /// A Windows entry: a drive-letter path (`C:\Windows`) or a UNC path, optionally ending
    /// in `\**` (or `/**`).
    pub fn parse_windows(s: &str) -> Result<Self, PathPatternError> {
        let err = || PathPatternError(s.to_owned(), "a drive-letter or UNC path", "\\**");
        let (base, recursive) = match s.strip_suffix("\\**").or_else(|| s.strip_suffix("/**")) {
            Some(b) => (b, true),
            None => (s, false),
        };
        // `C:` alone is drive-relative; `C:\` is the drive root.
        // (the suffix is ASCII, so byte 3 is a char boundary).
        let base = if base.len() == 2 && recursive {
            &s[..3]
        } else {
            base
        };
        if !is_windows_path(base)
            || !is_absolute(base, PathStyle::Windows)
            || base.contains('*')
            || base.contains('?')
        {
            return Err(err());
        }
        Ok(PathPattern {
            base: normalize_windows(base),
            recursive,
            written: Some(s.to_owned()),
        })
    }

    /// `path` must already be normalised (either style: a pattern never matches a path of
    /// the other style).
    pub fn matches(&self, path: &str) -> bool {
        path == self.base || (self.recursive && is_strictly_inside(path, &self.base))
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(w) = &self.written {
            return f.write_str(w);
        }
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

/// A [`PathPattern`] read as a Windows entry ([`PathPattern::parse_windows`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsPathPattern(pub PathPattern);

impl<'de> serde::Deserialize<'de> for WindowsPathPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PathPattern::parse_windows(&s)
            .map(WindowsPathPattern)
            .map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for WindowsPathPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
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

    /// The one-pass test agrees with its definition (no `//`, `/./`, `/../`, trailing `/`,
    /// `/.` or `/..`; absolute) on every path of up to 7 characters over `/`, `.` and `a`.
    #[test]
    fn is_normal_matches_its_definition() {
        fn definition(p: &str) -> bool {
            p.starts_with('/')
                && (p.len() == 1 || !p.ends_with('/'))
                && !p.contains("//")
                && !p.contains("/./")
                && !p.contains("/../")
                && !p.ends_with("/.")
                && !p.ends_with("/..")
        }
        let mut paths = vec![String::new()];
        let mut checked = 0;
        for _ in 0..7 {
            let mut next = Vec::new();
            for p in &paths {
                for c in ['/', '.', 'a'] {
                    let q = format!("{p}{c}");
                    assert_eq!(is_normal(&q), definition(&q), "{q:?}");
                    checked += 1;
                    next.push(q);
                }
            }
            paths = next;
        }
        assert_eq!(is_normal(""), definition(""));
        assert_eq!(checked, 3279);
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

    // Windows semantics follow the kubelet: kubernetes/kubernetes
    // pkg/volume/util/util.go:MakeAbsolutePath (a path with `:` unchanged, a leading `/` or `\`
    // gets `c:`, anything else `c:\`), pkg/kubelet/kubelet_pods.go:makeMounts (UNC paths and
    // utilfs.IsAbs paths are left alone) and pkg/util/filesystem IsAbs (Windows: filepath.IsAbs
    // or a leading `\` or `/`); see tests/data/kubelet/NOTES.md §7. Case-insensitivity and
    // `.`/`..`/separator folding are Win32 path resolution. The first rows are the Kubernetes
    // docs' own Windows examples (`C:\data`, `C:/scratch`).
    #[rstest]
    #[case::docs_backslash(r"C:\data", "c:/data")]
    #[case::docs_slash("C:/scratch", "c:/scratch")]
    #[case::lower_trailing("c:/data/", "c:/data")]
    #[case::mixed_case(r"C:\Data\Cache", "c:/data/cache")]
    #[case::other_drive(r"D:\x", "d:/x")]
    #[case::root_relative(r"\data", "c:/data")]
    #[case::slash_root_relative("/data", "c:/data")]
    #[case::relative("data", "c:/data")]
    #[case::drive_relative("C:data", "c:/data")]
    #[case::drive_root(r"C:\", "c:/")]
    #[case::dotdot_clamped(r"C:\..\..\Windows", "c:/windows")]
    #[case::dots(r"C:\a\.\b\..\c\\", "c:/a/c")]
    #[case::unc(r"\\Server\Share\Dir", "//server/share/dir")]
    #[case::unc_dotdot_clamped(r"\\server\share\..\..\x", "//server/share/x")]
    #[case::unc_root(r"\\server\share\", "//server/share")]
    fn normalizes_windows(#[case] input: &str, #[case] want: &str) {
        assert_eq!(normalize_windows(input), want);
        assert_eq!(PathStyle::of_normalized(want), PathStyle::Windows);
    }

    #[rstest]
    #[case::linux_pod_linux_path("/data", PathStyle::Linux, PathStyle::Linux)]
    #[case::linux_pod_backslash(r"\data", PathStyle::Linux, PathStyle::Linux)]
    #[case::linux_pod_drive(r"C:\data", PathStyle::Linux, PathStyle::Windows)]
    #[case::linux_pod_drive_slash("c:/data", PathStyle::Linux, PathStyle::Windows)]
    #[case::linux_pod_unc(r"\\srv\share", PathStyle::Linux, PathStyle::Windows)]
    #[case::linux_pod_double_slash("//srv/share", PathStyle::Linux, PathStyle::Linux)]
    #[case::windows_pod_linux_path("/data", PathStyle::Windows, PathStyle::Windows)]
    fn styles(#[case] path: &str, #[case] pod: PathStyle, #[case] want: PathStyle) {
        assert_eq!(PathStyle::of(path, pod), want);
        let key = normalize_in(path, pod);
        assert_eq!(PathStyle::of_normalized(&key), want, "{key}");
    }

    #[rstest]
    #[case::linux_abs("/data", PathStyle::Linux, true)]
    #[case::linux_rel("data", PathStyle::Linux, false)]
    #[case::win_drive(r"C:\data", PathStyle::Windows, true)]
    #[case::win_drive_slash("C:/scratch", PathStyle::Windows, true)]
    #[case::win_drive_relative("C:data", PathStyle::Windows, false)]
    #[case::win_unc(r"\\server\share", PathStyle::Windows, true)]
    #[case::win_backslash_root(r"\data", PathStyle::Windows, true)]
    #[case::win_slash_root("/data", PathStyle::Windows, true)]
    #[case::win_relative("data", PathStyle::Windows, false)]
    fn absolute(#[case] path: &str, #[case] style: PathStyle, #[case] want: bool) {
        assert_eq!(is_absolute(path, style), want);
    }

    #[rstest]
    #[case::win_child("c:/data/x", "c:/data", true)]
    #[case::win_drive_root("c:/data", "c:/", true)]
    #[case::win_other_drive("d:/data", "c:/", false)]
    #[case::win_prefix_not_child("c:/database", "c:/data", false)]
    #[case::unc_child("//srv/share/x", "//srv/share", true)]
    #[case::unc_not_under_linux_root("//srv/share", "/", false)]
    #[case::linux_not_under_windows("/data", "c:/", false)]
    fn inside_across_styles(#[case] inner: &str, #[case] outer: &str, #[case] want: bool) {
        assert_eq!(is_strictly_inside(inner, outer), want);
    }

    #[test]
    fn tree_order_is_bytes_with_slash_lowest() {
        let rank = |c: u8| if c == b'/' { 0u16 } else { u16::from(c) + 1 };
        let pool = [
            "/",
            "/a",
            "/a/",
            "/a/b",
            "/a-b",
            "/a.b",
            "/ab",
            "/a/b/c/d/e/f/g/h",
            "/a/b/c/d/e/f/g/i",
            "/a/b/c/d/e/f/gh",
            "/a/b/c/d/e/f/g",
            "/aaaaaaaa/b",
            "/aaaaaaaa-b",
            "/aaaaaaaa",
            "c:/x",
            "c:/",
            "//s/h",
            "/é",
            "/e",
        ];
        for a in pool {
            for b in pool {
                let want = PathStyle::of_normalized(a)
                    .cmp(&PathStyle::of_normalized(b))
                    .then_with(|| a.bytes().map(rank).cmp(b.bytes().map(rank)));
                assert_eq!(tree_cmp(a, b), want, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn tree_order_puts_parents_first_and_children_right_after() {
        let mut v = vec![
            "/data-x",
            "/data/x",
            "/data",
            "c:/a",
            "/",
            "/data/x/y",
            "/data.x",
        ];
        v.sort_by(|a, b| tree_cmp(a, b));
        assert_eq!(
            v,
            [
                "/",
                "/data",
                "/data/x",
                "/data/x/y",
                "/data-x",
                "/data.x",
                "c:/a"
            ]
        );
    }

    #[test]
    fn display_shows_windows_keys_with_backslashes() {
        assert_eq!(display("c:/data"), r"c:\data");
        assert_eq!(display("//srv/share"), r"\\srv\share");
        assert_eq!(display("/data"), "/data");
    }

    #[rstest]
    #[case::recursive_self(r"C:\Windows\**", "c:/windows", true)]
    #[case::recursive_child(r"C:\Windows\**", "c:/windows/system32", true)]
    #[case::slash_suffix("c:/windows/**", "c:/windows/system32", true)]
    #[case::sibling(r"C:\Windows\**", "c:/windowsapps", false)]
    #[case::exact(r"C:\Windows", "c:/windows/temp", false)]
    #[case::drive_root_recursive(r"C:\**", "c:/anything", true)]
    #[case::linux_path_never(r"C:\**", "/etc", false)]
    #[case::unc(r"\\srv\share\**", "//srv/share/x", true)]
    fn windows_pattern(#[case] pat: &str, #[case] path: &str, #[case] want: bool) {
        assert_eq!(PathPattern::parse_windows(pat).unwrap().matches(path), want);
    }

    #[rstest]
    #[case::linux("/etc")]
    #[case::relative("Windows")]
    #[case::drive_relative("C:Windows")]
    #[case::glob(r"C:\Win*")]
    fn bad_windows_pattern(#[case] pat: &str) {
        assert!(PathPattern::parse_windows(pat).is_err());
    }

    #[test]
    fn linux_pattern_never_matches_a_windows_key() {
        assert!(!PathPattern::parse("/**").unwrap().matches("//srv/share"));
        assert!(!PathPattern::parse("/**").unwrap().matches("c:/data"));
        assert!(PathPattern::parse(r"C:\Windows").is_err());
    }

    #[test]
    fn windows_pattern_round_trips_as_written() {
        let p = PathPattern::parse_windows(r"C:\Windows\**").unwrap();
        assert_eq!(p.to_string(), r"C:\Windows\**");
    }

    #[test]
    fn pattern_round_trips() {
        for p in ["/", "/**", "/proc/**", "/etc"] {
            assert_eq!(PathPattern::parse(p).unwrap().to_string(), p);
        }
    }
}
