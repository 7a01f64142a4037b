//! The text log's field formatter: the same text as `tracing-subscriber`'s `DefaultFields`
//! with colours off (`name=value`, strings quoted and escaped with `{:?}`), without its
//! per-field styling calls, and with a fast path for strings that need no escaping. A decision
//! line has ~14 fields, and with `DefaultFields` formatting them was a tenth of a denied
//! request's instructions; what each costs is in bench/README.md, "Figures behind the code".
//!
//! Escaping is unchanged: a string with a quote, a backslash, a control character or anything
//! outside printable ASCII goes through `{:?}`, so a request field with a newline still cannot
//! start a log line of its own.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// See the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainFields;

impl<'w> FormatFields<'w> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = Visitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct Visitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

/// `{:?}` of a `str` is the text in quotes when no byte needs escaping.
fn needs_escape(s: &str) -> bool {
    s.bytes()
        .any(|b| !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\')
}

impl Visitor<'_> {
    /// Separator and `name=` (none for the message); false after a write error.
    fn start(&mut self, field: &Field) -> bool {
        if self.result.is_err() {
            return false;
        }
        let name = field.name();
        if !std::mem::take(&mut self.first) {
            self.result = self.writer.write_char(' ');
        }
        if name != "message" {
            let name = name.strip_prefix("r#").unwrap_or(name);
            self.result = self
                .result
                .and_then(|()| self.writer.write_str(name))
                .and_then(|()| self.writer.write_char('='));
        }
        self.result.is_ok()
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.start(field) {
            return;
        }
        self.result = if field.name() == "message" {
            self.writer.write_str(value)
        } else if needs_escape(value) {
            write!(self.writer, "{value:?}")
        } else {
            self.writer
                .write_char('"')
                .and_then(|()| self.writer.write_str(value))
                .and_then(|()| self.writer.write_char('"'))
        };
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.start(field) {
            self.result = write!(self.writer, "{value}");
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.start(field) {
            self.result = write!(self.writer, "{value}");
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.start(field) {
            self.result = write!(self.writer, "{value}");
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // As DefaultFields: the error's Display, then its sources ("field.sources=[...]").
        if !self.start(field) {
            return;
        }
        self.result = write!(self.writer, "{value}");
        if let Some(source) = value.source() {
            let mut s = Some(source);
            self.result = self.result.and_then(|()| {
                write!(self.writer, " {}.sources=[", field.name())?;
                let mut first = true;
                while let Some(e) = s {
                    if !std::mem::take(&mut first) {
                        self.writer.write_str(", ")?;
                    }
                    write!(self.writer, "{e}")?;
                    s = e.source();
                }
                self.writer.write_char(']')
            });
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.start(field) {
            self.result = write!(self.writer, "{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Outer(Inner);
    #[derive(Debug)]
    struct Inner;
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer failed")
        }
    }
    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("inner \"cause\"")
        }
    }
    impl std::error::Error for Inner {}
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// Every event below, formatted by `DefaultFields` (colours off) and by `PlainFields`.
    /// Request text goes in as `&str` or `?` (escaped), as in the handlers; `%` (raw) only
    /// carries text of our own.
    fn emit_all() {
        let forged = "abc\nFORGED level=ERROR admission decision";
        for s in [
            "plain",
            "",
            "with space",
            forged,
            "quote\"d",
            "back\\slash",
            "tab\there",
            "ünïcödé",
            "\u{7f}del",
            "n\r\nFORGED-NAME",
        ] {
            tracing::info!(
                uid = s,
                kind = "Pod",
                dry_run = false,
                denied = 3u64,
                delta = -4i64,
                ratio = 0.5f64,
                rules = %"emptydir-size-limit-required,mount-path-uniquex2",
                dbg = ?s,
                "admission decision"
            );
            tracing::warn!(s, "message only {}", 7);
            tracing::error!(
                error = &Outer(Inner) as &(dyn std::error::Error + 'static),
                "failed"
            );
            tracing::info!(r#type = s, "raw identifier");
        }
    }

    fn capture<F>(fields: Option<F>) -> String
    where
        F: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let buf = Buf::default();
        let writer = buf.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_writer(move || writer.clone());
        match fields {
            Some(f) => tracing::subscriber::with_default(builder.fmt_fields(f).finish(), emit_all),
            None => tracing::subscriber::with_default(builder.finish(), emit_all),
        }
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn same_text_as_default_fields() {
        let default = capture::<PlainFields>(None);
        let plain = capture(Some(PlainFields));
        assert!(default.lines().count() >= 40, "{default}");
        assert_eq!(plain, default);
    }

    #[test]
    fn request_text_cannot_start_a_line() {
        let out = capture(Some(PlainFields));
        for line in out.lines() {
            assert!(!line.starts_with("FORGED"), "{line:?}\n{out}");
        }
        assert!(out.contains(r#"uid="abc\nFORGED level=ERROR"#), "{out}");
    }

    #[test]
    fn escape_test_matches_debug() {
        // For ASCII the fast path is taken exactly where `{:?}` adds nothing but the quotes;
        // anything else takes the `{:?}` path.
        for b in 0u8..=0x7f {
            let s = (b as char).to_string();
            let plain = format!("{s:?}") == format!("\"{s}\"");
            assert_eq!(needs_escape(&s), !plain, "{b:#x}");
        }
        for s in ["é", "a\u{2028}b", "\u{feff}"] {
            assert!(needs_escape(s), "{s:?}");
        }
    }
}
