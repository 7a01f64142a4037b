//! What the text log's two hand-written parts save over the libraries that could replace them
//! (issue 19): `server::log::LogSink` (batched, bounded, lossy writer thread) against
//! `tracing-appender`'s non-blocking writer, and `cli::log_fields::PlainFields` against
//! `tracing-subscriber`'s `DefaultFields`. Each configuration logs the same decision line (the
//! 14 fields the webhook logs for a denial) N times through a `tracing-subscriber` fmt layer
//! into a pipe that `cat` drains to /dev/null, as a container runtime drains stderr.
//!
//!   cargo bench --bench log_sink [-- LINES ROUNDS]      (default 300000 lines, 5 rounds)
//!
//! Printed per configuration (median of the rounds): CPU time of the logging thread per line
//! (`/proc/thread-self/schedstat`: what a request thread pays), CPU time of the whole process
//! per line (/proc/self/stat: the writer thread's share included, to 10 ms per run), write(2)
//! calls per 1000 lines, and lines dropped (the lines come as one burst, far faster than the
//! webhook logs, so a bounded sink drops some; a dropped line costs less than a written one). Results: bench/README.md, "Figures behind the code".

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;
use volguard::cli::log_fields::PlainFields;
use volguard::server::log::LogSink;

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// CPU nanoseconds of one thread (`/proc/.../schedstat`, first field).
fn schedstat(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU nanoseconds of this process, threads that have exited included (utime + stime of
/// /proc/self/stat; clock ticks, so a run needs enough lines to be read to the percent).
fn process_cpu() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces) start at state, field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // USER_HZ is 100 on Linux.
    f.iter().sum::<u64>() * 10_000_000
}

/// `syscw` of /proc/self/io: write-type system calls so far.
fn write_calls() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("syscw: ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A pipe into `cat > /dev/null`.
fn drained_pipe() -> (std::process::Child, std::process::ChildStdin) {
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("cat runs");
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

/// The webhook's decision line for a denial (src/server/handlers.rs), with typical values.
fn log_lines(n: usize, paced: bool) {
    for i in 0..n {
        // Paced: 64 lines then 0.5 ms asleep, at most ~128k lines/s (the webhook's denials
        // peak far lower), so no bounded sink drops any.
        if paced && i % 64 == 63 {
            std::thread::sleep(Duration::from_micros(500));
        }
        tracing::info!(
            uid = "705ab4f5-6393-11e8-b7cc-42010a800002",
            kind = "Pod",
            namespace = "team-a",
            name = "web-7d4b9c5f6d-x2x9q",
            operation = "CREATE",
            dry_run = false,
            verdict = "denied",
            denied = 2u64,
            waived = 0u64,
            origin = "policy",
            user = "system:serviceaccount:kube-system:replicaset-controller",
            rules = %"emptydir-size-limit-required,mount-path-unique",
            policy_generation = 3u64,
            latency_us = 31 + (i as u64 & 7),
            "admission decision"
        );
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Sink {
    /// One write(2) per line (LogSink with interval 0: what volguard did before the sink).
    Direct,
    /// volguard's LogSink, 50 ms interval, 1 MiB cap.
    Batched,
    /// tracing-appender's NonBlocking, lossy (its default), 128k-line channel.
    Appender,
    /// The same with a 4096-line channel: about the 1 MiB LogSink holds, in decision lines.
    AppenderBounded,
    /// The same, writing through a 64 KiB BufWriter (its worker flushes when the channel is
    /// empty, so lines are batched too).
    AppenderBuffered,
}

#[derive(Clone, Copy, PartialEq)]
enum Fields {
    Plain,
    Default,
}

struct Run {
    thread_ns: f64,
    process_ns: f64,
    writes_per_k: f64,
    dropped: u64,
}

fn subscriber<W>(fields: Fields, w: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let b = tracing_subscriber::fmt().with_ansi(false).with_writer(w);
    match fields {
        Fields::Plain => Box::new(b.fmt_fields(PlainFields).finish()),
        Fields::Default => Box::new(b.finish()),
    }
}

fn run(sink: Sink, fields: Fields, lines: usize, paced: bool) -> Run {
    let (mut child, pipe) = drained_pipe();
    let dropped_before = DROPPED.load(std::sync::atomic::Ordering::Relaxed);
    let now = || {
        (
            schedstat("/proc/thread-self/schedstat"),
            process_cpu(),
            write_calls(),
        )
    };
    let (t0, p0, w0, t1, p1, w1, dropped);
    match sink {
        Sink::Direct | Sink::Batched => {
            let interval = if sink == Sink::Direct {
                Duration::ZERO
            } else {
                Duration::from_millis(50)
            };
            let log = LogSink::new(Box::new(pipe), 1024 * 1024, interval, &DROPPED).unwrap();
            let sub = subscriber(fields, log.writer());
            (t0, p0, w0) = now();
            tracing::subscriber::with_default(sub, || log_lines(lines, paced));
            log.close();
            (t1, p1, w1) = now();
            dropped = DROPPED.load(std::sync::atomic::Ordering::Relaxed) - dropped_before;
        }
        Sink::Appender | Sink::AppenderBounded | Sink::AppenderBuffered => {
            let out: Box<dyn Write + Send> = if sink == Sink::Appender {
                Box::new(pipe)
            } else {
                Box::new(std::io::BufWriter::with_capacity(64 * 1024, pipe))
            };
            let lines_limit = if sink == Sink::AppenderBounded {
                4096
            } else {
                128_000
            };
            let (nb, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(true)
                .buffered_lines_limit(lines_limit)
                .finish(out);
            let counter = nb.error_counter();
            let sub = subscriber(fields, nb);
            (t0, p0, w0) = now();
            tracing::subscriber::with_default(sub, || log_lines(lines, paced));
            // The worker is done once the guard is dropped (it flushes and joins).
            drop(guard);
            (t1, p1, w1) = now();
            dropped = counter.dropped_lines() as u64;
        }
    }
    let _ = child.wait();
    let n = lines as f64;
    Run {
        thread_ns: (t1 - t0) as f64 / n,
        process_ns: (p1.saturating_sub(p0)) as f64 / n,
        writes_per_k: (w1 - w0) as f64 * 1000.0 / n,
        dropped,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; positional numbers are ours.
    let nums: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let lines = nums.first().copied().unwrap_or(300_000);
    let rounds = nums.get(1).copied().unwrap_or(5).max(1);
    let configs = [
        (
            "PlainFields + LogSink (volguard)",
            Fields::Plain,
            Sink::Batched,
        ),
        ("PlainFields + write per line", Fields::Plain, Sink::Direct),
        (
            "PlainFields + tracing-appender",
            Fields::Plain,
            Sink::Appender,
        ),
        (
            "PlainFields + tracing-appender, 4096 lines",
            Fields::Plain,
            Sink::AppenderBounded,
        ),
        (
            "PlainFields + tracing-appender + BufWriter",
            Fields::Plain,
            Sink::AppenderBuffered,
        ),
        ("DefaultFields + LogSink", Fields::Default, Sink::Batched),
        (
            "DefaultFields + tracing-appender",
            Fields::Default,
            Sink::Appender,
        ),
    ];
    let started = Instant::now();
    for paced in [false, true] {
        let how = if paced {
            "paced: 64 lines, then 0.5 ms asleep"
        } else {
            "one burst"
        };
        println!("\n{lines} lines, {how}; {rounds} rounds, median; ns of CPU per line\n");
        println!(
            "| fields + sink | logging thread | whole process | write(2) per 1000 lines | dropped |"
        );
        println!("|---|---:|---:|---:|---:|");
        for (label, fields, sink) in configs {
            let runs: Vec<Run> = (0..rounds)
                .map(|_| run(sink, fields, lines, paced))
                .collect();
            println!(
                "| {label} | {:.0} | {:.0} | {:.1} | {} |",
                median(runs.iter().map(|r| r.thread_ns).collect()),
                median(runs.iter().map(|r| r.process_ns).collect()),
                median(runs.iter().map(|r| r.writes_per_k).collect()),
                runs.iter().map(|r| r.dropped).max().unwrap_or(0),
            );
        }
    }
    eprintln!("({:.1} s)", started.elapsed().as_secs_f64());
}
