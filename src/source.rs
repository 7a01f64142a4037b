//! Where the policy comes from (a polled file, a watched ConfigMap, the embedded default),
//! and how a new one replaces the old: parsed and validated first, swapped atomically only
//! when valid (last good wins). Readers never take a lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::engine::policy::{Policy, PolicyError};

pub mod client;
pub mod configmap;
pub mod file;

/// Told about every policy change, e.g. to export metrics.
pub trait PolicyObserver: Send + Sync {
    /// A policy was installed (including the initial embedded default).
    fn installed(&self, policy: &LoadedPolicy);
    /// A new policy was rejected; the one in force stays.
    fn rejected(&self);
    /// The source confirmed what it holds is current (a list, a watch opened, an event or a
    /// bookmark): the policy in force is not stale as of now.
    fn synced(&self, _source: &str) {}
    /// The source could not sync; `class` says why (`forbidden`, `timeout`, `connect`...).
    fn sync_failed(&self, _class: &'static str) {}
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
    /// Why the last policy text was refused, until a valid one arrives.
    rejection: ArcSwapOption<String>,
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
            rejection: ArcSwapOption::empty(),
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

    /// Why the last policy text was refused, while no valid text has followed it.
    pub fn rejection(&self) -> Option<Arc<String>> {
        self.rejection.load_full()
    }

    /// Parses `text` and installs it; on error the policy in force is kept, the error is
    /// logged with its key path and counted. A valid text after a refused one is logged as
    /// such, even when it is the policy already in force (an edit reverted).
    pub fn apply_text(&self, text: &str, file: &str, source: &str) -> Result<u64, PolicyError> {
        self.apply(text, file, source, true)
    }

    /// [`Self::apply_text`] for the first policy of a source whose caller reports the error
    /// itself (an invalid `--policy-file` at start is one error line, then exit 2).
    pub fn apply_first_text(
        &self,
        text: &str,
        file: &str,
        source: &str,
    ) -> Result<u64, PolicyError> {
        self.apply(text, file, source, false)
    }

    fn apply(&self, text: &str, file: &str, source: &str, log: bool) -> Result<u64, PolicyError> {
        match Policy::parse(text, file) {
            Ok(p) => {
                let was_rejected = self.rejection.swap(None).is_some();
                let current = self.current();
                if self.is_loaded() && current.policy.hash == p.hash && current.source == source {
                    if was_rejected {
                        tracing::info!(source, generation = current.generation, hash = %p.hash, "policy valid again; it is the policy in force");
                    }
                    return Ok(current.generation);
                }
                let hash = p.hash.clone();
                let generation = self.install(p, source);
                if was_rejected {
                    tracing::info!(source, generation, hash = %hash, "policy valid again; loaded");
                } else {
                    tracing::info!(source, generation, hash = %hash, "policy loaded");
                }
                Ok(generation)
            }
            Err(e) => {
                self.observer.rejected();
                self.rejection.store(Some(Arc::new(e.to_string())));
                if log && self.is_loaded() {
                    tracing::error!(source, error = %e, kept_generation = self.current().generation, "policy rejected; keeping the policy in force");
                } else if log {
                    tracing::error!(source, error = %e, "policy invalid and no policy loaded yet: not ready until a valid one arrives");
                }
                Err(e)
            }
        }
    }

    /// The source is in sync with where the policy comes from (see [`PolicyObserver`]).
    pub fn synced(&self, source: &str) {
        self.observer.synced(source);
    }

    /// The source failed to sync; the policy in force stays.
    pub fn sync_failed(&self, class: &'static str) {
        self.observer.sync_failed(class);
    }

    /// Installs the embedded default (no ConfigMap, or no `policy.yaml` in it).
    pub fn apply_default(&self, why: &str) -> u64 {
        self.rejection.store(None);
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

    /// With no last good policy (a ConfigMap invalid from the start), the refusal is kept
    /// for /readyz until a valid text arrives; a valid text (even the policy in force)
    /// clears it.
    #[test]
    fn rejection_is_kept_until_a_valid_text() {
        let store = PolicyStore::new(Arc::new(crate::server::metrics::Metrics::new()));
        assert!(store.apply_text("modee: warn", "p.yaml", "cm").is_err());
        assert!(!store.is_loaded());
        let why = store.rejection().expect("the refusal is kept");
        assert!(why.contains("modee: unknown key"), "{why}");
        assert_eq!(store.apply_text("mode: warn", "p.yaml", "cm").unwrap(), 1);
        assert!(store.rejection().is_none() && store.is_loaded());
        assert!(store.apply_text("mode: [", "p.yaml", "cm").is_err());
        assert!(store.rejection().is_some());
        // Reverted to the policy in force: same generation, refusal cleared.
        assert_eq!(store.apply_text("mode: warn", "p.yaml", "cm").unwrap(), 1);
        assert!(store.rejection().is_none());
    }
}
