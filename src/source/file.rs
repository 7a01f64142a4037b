//! Files polled for changes (the policy file; the TLS key pair has its own loop in
//! `server::tls`, which also checks validity), and the signal that asks for a re-read now.

use std::path::PathBuf;
use std::time::Duration;

/// Asks the pollers to re-read their files at once (SIGHUP) instead of at the next tick.
pub type Reread = tokio::sync::watch::Receiver<()>;

/// Waits for the next poll: the interval's tick, or an asked-for re-read.
pub async fn next_poll(tick: &mut tokio::time::Interval, reread: &mut Reread) {
    tokio::select! {
        _ = tick.tick() => {}
        // A dropped sender fails at once; the tick then paces the loop alone.
        Ok(()) = reread.changed() => {}
    }
}

/// Polls `paths` every `interval` and calls `on_change` with their contents whenever any of
/// them differs from the last read. Reading through the path follows symlinks, so kubelet's
/// `..data` symlink swap (a rename, not a write) is seen like any edit. Unreadable files are
/// logged once and skipped until readable again. `reread` makes it poll at once.
pub async fn watch<F>(
    paths: Vec<PathBuf>,
    interval: Duration,
    initial: Vec<Vec<u8>>,
    mut reread: Reread,
    mut on_change: F,
) where
    F: FnMut(&[Vec<u8>]) + Send,
{
    let mut last = initial;
    let mut failing = false;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        next_poll(&mut tick, &mut reread).await;
        let mut now = Vec::with_capacity(paths.len());
        let mut error = None;
        for p in &paths {
            match tokio::fs::read(p).await {
                Ok(b) => now.push(b),
                Err(e) => {
                    error = Some(format!("{}: {e}", p.display()));
                    break;
                }
            }
        }
        if let Some(e) = error {
            if !failing {
                tracing::warn!(error = %e, "cannot read watched file; keeping the current version");
            }
            failing = true;
            continue;
        }
        failing = false;
        if now != last {
            on_change(&now);
            last = now;
        }
    }
}
