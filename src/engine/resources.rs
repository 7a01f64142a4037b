//! The Pod's effective resource limits, as the rules compare emptyDirs against them.

use crate::engine::model::{RawQuantity, ResourceList, Resources, Spec};
use crate::engine::quantity::Quantity;

/// The resources whose Pod-wide limit the emptyDir rules compare against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Memory,
    EphemeralStorage,
}

impl LimitKind {
    fn pick(self, list: &ResourceList) -> Option<&RawQuantity> {
        match self {
            LimitKind::Memory => list.memory.as_ref(),
            LimitKind::EphemeralStorage => list.ephemeral_storage.as_ref(),
        }
    }
}

/// A Pod's limit for one resource, or the names of the containers without one (empty when
/// the Pod has no containers).
pub type PodLimit<'a> = Result<Quantity, Vec<&'a str>>;

/// The Pod's limit for one resource: the pod-level limit if set, else the sum over the
/// regular containers when every one of them sets it.
pub fn pod_limit(spec: &Spec, kind: LimitKind) -> PodLimit<'_> {
    let limit_of = |r: &Option<Resources>| {
        r.as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| kind.pick(l))
            .and_then(|raw| Quantity::parse(&raw.0).ok())
    };
    if let Some(q) = limit_of(&spec.resources) {
        return Ok(q);
    }
    let mut sum = Quantity::ZERO;
    let mut missing = Vec::new();
    for c in &spec.containers {
        match limit_of(&c.resources) {
            Some(q) => sum = sum.checked_add(q).unwrap_or(sum),
            None => missing.push(c.name.as_str()),
        }
    }
    if !spec.containers.is_empty() && missing.is_empty() {
        Ok(sum)
    } else {
        Err(missing)
    }
}
