//! Where the policy comes from (a polled file, a watched ConfigMap, the embedded default),
//! and how a new one replaces the old: parsed and validated first, swapped atomically only
//! when valid (last good wins). Readers never take a lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;

use crate::engine::policy::{Policy, PolicyError};

pub mod configmap;
pub mod file;

/// Told about every policy change, e.g. to export metrics.
pub trait PolicyObserver: Send + Sync {
    /// A policy was installed (including the initial embedded default).
    fn installed(&self, policy: &LoadedPolicy);
    /// A new policy was rejected; the one in force stays.
    fn rejected(&self);
}

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
    observer: Arc<dyn PolicyObserver>,
}

impl PolicyStore {
    /// Starts on the embedded default; `loaded` stays false until a source confirms a policy.
    pub fn new(observer: Arc<dyn PolicyObserver>) -> Self {
        let store = PolicyStore {
            current: ArcSwap::from_pointee(LoadedPolicy {
                policy: Policy::default(),
                generation: 0,
                source: "embedded default".into(),
            }),
            generation: AtomicU64::new(0),
            loaded: AtomicBool::new(false),
            observer,
        };
        store.observer.installed(&store.current());
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
        self.loaded.store(true, Ordering::Release);
        self.observer.installed(&loaded);
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
                self.observer.rejected();
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_policy_keeps_the_last_good_one() {
        let metrics = Arc::new(crate::server::metrics::Metrics::new());
        let store = PolicyStore::new(metrics.clone());
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
        assert_eq!(
            store.current().policy.mode,
            crate::engine::policy::Mode::Warn
        );
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
        assert_eq!(
            store.current().policy.mode,
            crate::engine::policy::Mode::Enforce
        );
        let m = metrics.encode();
        assert!(
            m.contains("volguard_policy_reloads_total{result=\"invalid\"} 1"),
            "{m}"
        );
        assert!(m.contains("volguard_policy_generation 3"), "{m}");
    }
}
