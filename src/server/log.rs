//! The log sink of `volguard serve`: lines are appended to a bounded buffer under a short lock
//! and written to stderr by one background thread, in batches.
//!
//! Why: a denied request logs one line, and a `write(2)` per line was a visible share of a
//! denied review's server CPU (measured in bench/README.md, "Figures behind the code", which
//! also weighs `tracing-appender`'s non-blocking writer against this sink).
//! Batched, thousands of lines go out in one call. And a log pipe that stops draining (a
//! container runtime that is not reading) used to block every request thread in `write(2)`;
//! now it blocks only the writer thread, the buffer fills to its cap, and further lines are
//! dropped and counted (`volguard_log_lines_dropped_total`) instead of stalling admission.
//!
//! What it costs: a line reaches stderr up to `--log-flush-interval` (default 50 ms) after
//! it was logged, and a process killed outright (SIGKILL, OOM kill) loses what it logged in
//! that last interval. Returning from `serve` (every exit after a signal or an error) and a
//! panic flush the buffer first. `--log-flush-interval 0` writes each line at once, as before.
//! Envoy's access logs (flushed every 10 s) and zap's `BufferedWriteSyncer` (every 30 s) make
//! the same trade with longer intervals.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Lines dropped because the buffer was full, over the process's life (read at scrape time).
pub static DROPPED_LINES: AtomicU64 = AtomicU64::new(0);

/// A flush starts early once this much is buffered.
const HIGH_WATER: usize = 64 * 1024;

struct Buffer {
    lines: Vec<u8>,
    /// No writer thread runs (`--log-flush-interval 0`, or closed): lines are written at once.
    direct: bool,
}

struct Inner {
    buffer: Mutex<Buffer>,
    /// Wakes the writer thread: first line after a flush, high water, close.
    wake: Condvar,
    /// The writer thread's output; locked while writing, so `flush` can wait for a batch in
    /// progress to be out.
    out: Mutex<Box<dyn Write + Send>>,
    capacity: usize,
    interval: Duration,
    dropped: &'static AtomicU64,
}

/// The sink; clones share it. Give [`LogSink::writer`] to the subscriber.
#[derive(Clone)]
pub struct LogSink(Arc<Inner>);

impl LogSink {
    /// A sink writing to `out` every `interval` (at once when zero), holding at most
    /// `capacity` bytes. Starts the writer thread unless `interval` is zero.
    pub fn new(
        out: Box<dyn Write + Send>,
        capacity: usize,
        interval: Duration,
        dropped: &'static AtomicU64,
    ) -> io::Result<LogSink> {
        let sink = LogSink(Arc::new(Inner {
            buffer: Mutex::new(Buffer {
                lines: Vec::new(),
                direct: interval.is_zero(),
            }),
            wake: Condvar::new(),
            out: Mutex::new(out),
            capacity,
            interval,
            dropped,
        }));
        if !interval.is_zero() {
            let writer = sink.clone();
            std::thread::Builder::new()
                .name("volguard-log".into())
                .spawn(move || writer_thread(&writer))?;
        }
        Ok(sink)
    }

    /// Stderr, with `--log-flush-interval`: what `volguard serve` logs to.
    pub fn stderr(interval: Duration) -> io::Result<LogSink> {
        LogSink::new(
            Box::new(io::stderr()),
            DEFAULT_CAPACITY,
            interval,
            &DROPPED_LINES,
        )
    }

    fn buffer(&self) -> MutexGuard<'_, Buffer> {
        self.0.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn out(&self) -> MutexGuard<'_, Box<dyn Write + Send>> {
        self.0.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one formatted line (the subscriber writes each event with one call), or
    /// counts it dropped when the buffer is full. Never waits for the output.
    fn append(&self, line: &[u8]) {
        let mut b = self.buffer();
        if b.direct {
            drop(b);
            let _ = self.out().write_all(line);
            return;
        }
        let before = b.lines.len();
        if before + line.len() > self.0.capacity {
            drop(b);
            self.0.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        b.lines.extend_from_slice(line);
        let after = b.lines.len();
        drop(b);
        if before == 0 || (before < HIGH_WATER && after >= HIGH_WATER) {
            self.0.wake.notify_one();
        }
    }

    /// Writes out everything logged so far (and waits for a batch the writer thread has
    /// taken but not yet written).
    pub fn flush(&self) {
        self.write_buffered(&mut Vec::new());
    }

    /// Writes the buffered lines, leaving `spare` (emptied) as the new buffer. The output is
    /// locked before the lines are taken, by `flush` and the writer thread alike, so no line
    /// is written out of order.
    fn write_buffered(&self, spare: &mut Vec<u8>) {
        let mut out = self.out();
        std::mem::swap(spare, &mut self.buffer().lines);
        let _ = out.write_all(spare);
        let _ = out.flush();
        spare.clear();
    }

    /// Flushes, and ends the writer thread; later lines (an evaluation thread finishing after
    /// `serve` returned) are written at once.
    pub fn close(&self) {
        self.buffer().direct = true;
        self.0.wake.notify_one();
        self.flush();
    }

    /// What the subscriber writes through.
    pub fn writer(&self) -> SinkWriter {
        SinkWriter(self.clone())
    }
}

/// Bytes held at most; beyond, lines are dropped and counted. A few thousand decision lines:
/// seconds of denials at full load, so a short stall of the log reader loses nothing.
pub const DEFAULT_CAPACITY: usize = 1024 * 1024;

fn writer_thread(sink: &LogSink) {
    let inner = &sink.0;
    let mut batch = Vec::new();
    loop {
        let mut b = sink.buffer();
        while b.lines.is_empty() && !b.direct {
            b = inner.wake.wait(b).unwrap_or_else(|e| e.into_inner());
        }
        if b.direct {
            return;
        }
        // Gather for one interval, unless the buffer reaches high water first.
        if b.lines.len() < HIGH_WATER {
            b = inner
                .wake
                .wait_timeout_while(b, inner.interval, |b| {
                    b.lines.len() < HIGH_WATER && !b.direct
                })
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(b);
        sink.write_buffered(&mut batch);
        if batch.capacity() > HIGH_WATER * 2 {
            batch = Vec::new();
        }
    }
}

/// A [`tracing_subscriber::fmt::MakeWriter`] onto the sink.
#[derive(Clone)]
pub struct SinkWriter(LogSink);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SinkWriter {
    type Writer = SinkWriter;
    fn make_writer(&'a self) -> SinkWriter {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    /// An output whose bytes the test can read.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn counter() -> &'static AtomicU64 {
        Box::leak(Box::new(AtomicU64::new(0)))
    }

    fn wait_for(what: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if what() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn lines_come_out_in_order_after_the_interval() {
        let out = Shared::default();
        let sink = LogSink::new(
            Box::new(out.clone()),
            1 << 20,
            Duration::from_millis(50),
            counter(),
        )
        .unwrap();
        let mut w = sink.writer();
        for i in 0..1000 {
            w.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        let want: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert!(wait_for(|| out.text().len() == want.len()), "not flushed");
        assert_eq!(out.text(), want);
    }

    #[test]
    fn flush_writes_everything_at_once() {
        let out = Shared::default();
        let sink = LogSink::new(
            Box::new(out.clone()),
            1 << 20,
            Duration::from_secs(3600),
            counter(),
        )
        .unwrap();
        sink.writer().write_all(b"a\n").unwrap();
        sink.writer().write_all(b"b\n").unwrap();
        sink.close();
        assert_eq!(out.text(), "a\nb\n");
        // After close, a line is written at once (there is no writer thread left).
        sink.writer().write_all(b"late\n").unwrap();
        assert_eq!(out.text(), "a\nb\nlate\n");
    }

    #[test]
    fn zero_interval_writes_each_line_synchronously() {
        let out = Shared::default();
        let sink = LogSink::new(Box::new(out.clone()), 1 << 20, Duration::ZERO, counter()).unwrap();
        sink.writer().write_all(b"now\n").unwrap();
        assert_eq!(out.text(), "now\n");
    }

    /// An output that blocks until the test lets it go.
    struct Stuck(Mutex<mpsc::Receiver<()>>, Shared);

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.0.lock().unwrap().recv();
            self.1.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_output_drops_and_counts_lines_instead_of_blocking_the_logger() {
        let (go, wait) = mpsc::channel();
        let out = Shared::default();
        let dropped = counter();
        let sink = LogSink::new(
            Box::new(Stuck(Mutex::new(wait), out.clone())),
            1000,
            Duration::from_millis(1),
            dropped,
        )
        .unwrap();
        let mut w = sink.writer();
        // The first line is taken by the writer thread, which then blocks in `write`.
        w.write_all(&[b'x'; 100]).unwrap();
        assert!(wait_for(|| sink.buffer().lines.is_empty()));
        // 100 lines of 100 bytes against a 1000-byte buffer: returns at once, 90 dropped.
        let start = Instant::now();
        for _ in 0..100 {
            w.write_all(&[b'y'; 100]).unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(dropped.load(Ordering::Relaxed), 90);
        // Unblocked, the output gets the first line and the ten that fitted.
        for _ in 0..100 {
            let _ = go.send(());
        }
        assert!(wait_for(|| out.text().len() == 100 + 1000));
    }
}
