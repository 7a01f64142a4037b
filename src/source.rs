//! Where the policy (and the TLS key pair) come from, and how a new one replaces the old:
//! parsed and validated first, swapped atomically only when valid (last good wins).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::policy::{Policy, PolicyError};
use crate::server::metrics::{Metrics, PolicyLabels};

pub mod configmap;

/// A policy in force, with where it came from.
#[derive(Debug)]
pub struct LoadedPolicy {
    pub policy: Policy,
    /// 1 for the first policy loaded, +1 for each accepted change.
    pub generation: u64,
    /// `embedded default`, a file path, or `configmap ns/name`.
    pub source: String,
}

/// The policy in force. Readers never block: `current()` is a lock-free load.
pub struct PolicyStore {
    current: ArcSwap<LoadedPolicy>,
    generation: AtomicU64,
    loaded: AtomicBool,
    metrics: Arc<Metrics>,
}

impl PolicyStore {
    /// Starts on the embedded default; `loaded` stays false until a source confirms a policy.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let store = PolicyStore {
            current: ArcSwap::from_pointee(LoadedPolicy {
                policy: Policy::default(),
                generation: 0,
                source: "embedded default".into(),
            }),
            generation: AtomicU64::new(0),
            loaded: AtomicBool::new(false),
            metrics,
        };
        store.publish_metrics(&store.current());
        store
    }

    pub fn current(&self) -> Arc<LoadedPolicy> {
        self.current.load_full()
    }

    /// True once a first policy has been accepted.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Installs a parsed policy as the next generation.
    pub fn install(&self, policy: Policy, source: &str) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let loaded = Arc::new(LoadedPolicy {
            policy,
            generation,
            source: source.to_owned(),
        });
        self.current.store(loaded.clone());
        self.publish_metrics(&loaded);
        self.loaded.store(true, Ordering::Release);
        self.metrics.reload("success");
        generation
    }

    /// Parses `text` and installs it; on error the policy in force is kept, the error is
    /// logged with its key path and counted.
    pub fn apply_text(&self, text: &str, file: &str, source: &str) -> Result<u64, PolicyError> {
        match Policy::parse(text, file) {
            Ok(p) => {
                let current = self.current();
                if self.is_loaded() && current.policy.hash == p.hash && current.source == source {
                    return Ok(current.generation);
                }
                let hash = p.hash.clone();
                let generation = self.install(p, source);
                tracing::info!(source, generation, hash = %hash, "policy loaded");
                Ok(generation)
            }
            Err(e) => {
                self.metrics.reload("invalid");
                tracing::error!(source, error = %e, kept_generation = self.current().generation, "policy rejected; keeping the policy in force");
                Err(e)
            }
        }
    }

    /// Installs the embedded default (no ConfigMap, or no `policy.yaml` in it).
    pub fn apply_default(&self, why: &str) -> u64 {
        let cur = self.current();
        if self.is_loaded() && cur.source == "embedded default" {
            return cur.generation;
        }
        let generation = self.install(Policy::default(), "embedded default");
        tracing::info!(reason = why, generation, "embedded default policy in force");
        generation
    }

    fn publish_metrics(&self, p: &LoadedPolicy) {
        self.metrics.policy_generation.set(p.generation as i64);
        self.metrics.policy_info.clear();
        self.metrics
            .policy_info
            .get_or_create(&PolicyLabels {
                hash: p.policy.hash.clone(),
                source: p.source.clone(),
            })
            .set(1);
    }
}

/// Readiness: TLS and a first policy loaded, and not shutting down.
#[derive(Default)]
pub struct Readiness {
    pub tls_loaded: AtomicBool,
    pub shutting_down: AtomicBool,
}

impl Readiness {
    pub fn check(&self, policies: &PolicyStore) -> Result<(), &'static str> {
        if self.shutting_down.load(Ordering::Acquire) {
            Err("shutting down")
        } else if !self.tls_loaded.load(Ordering::Acquire) {
            Err("TLS certificate not loaded")
        } else if !policies.is_loaded() {
            Err("policy not loaded yet")
        } else {
            Ok(())
        }
    }
}

/// Polls `paths` every `interval` and calls `on_change` with their contents whenever any of
/// them differs from the last read. Reading through the path follows symlinks, so kubelet's
/// `..data` symlink swap (a rename, not a write) is seen like any edit. Unreadable files are
/// logged once and skipped until readable again.
pub async fn watch_files<F>(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_policy_keeps_the_last_good_one() {
        let store = PolicyStore::new(Arc::new(Metrics::new()));
        assert!(!store.is_loaded());
        assert_eq!(
            store
                .apply_text("mode: warn", "p.yaml", "file p.yaml")
                .unwrap(),
            1
        );
        assert!(
            store
                .apply_text("mode: nope", "p.yaml", "file p.yaml")
                .is_err()
        );
        assert_eq!(store.current().generation, 1);
        assert_eq!(store.current().policy.mode, crate::policy::Mode::Warn);
        // Same text again is not a new generation.
        assert_eq!(
            store
                .apply_text("mode: warn", "p.yaml", "file p.yaml")
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .apply_text("mode: audit", "p.yaml", "file p.yaml")
                .unwrap(),
            2
        );
        assert_eq!(store.apply_default("deleted"), 3);
        assert_eq!(store.current().policy.mode, crate::policy::Mode::Enforce);
        let m = store.metrics.encode();
        assert!(
            m.contains("volguard_policy_reloads_total{result=\"invalid\"} 1"),
            "{m}"
        );
        assert!(m.contains("volguard_policy_generation 3"), "{m}");
    }
}
