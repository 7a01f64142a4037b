//! Files polled for changes: the policy file and the TLS key pair.

use std::path::PathBuf;
use std::time::Duration;

/// Polls `paths` every `interval` and calls `on_change` with their contents whenever any of
/// them differs from the last read. Reading through the path follows symlinks, so kubelet's
/// `..data` symlink swap (a rename, not a write) is seen like any edit. Unreadable files are
/// logged once and skipped until readable again.
pub async fn watch<F>(
    paths: Vec<PathBuf>,
    interval: Duration,
    initial: Vec<Vec<u8>>,
    mut on_change: F,
) where
    F: FnMut(&[Vec<u8>]) + Send,
{
    let mut last = initial;
    let mut failing = false;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
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
