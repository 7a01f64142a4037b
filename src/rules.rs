//! The rule catalogue: a registry table plus one file per rule.
//!
//! Every rule is a pure function of the Pod view and its settings that appends violations,
//! each with a stable rule ID and the field path inside the object the user wrote.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::fmt;

use crate::model::{Container, EmptyDir, Medium, RawQuantity, ResourceList, Spec, Volume};
use crate::paths;
use crate::policy::{RuleConfig, RuleSet};
use crate::quantity::{Quantity, QuantityError};

mod emptydir_ephemeral_storage_declared;
mod emptydir_memory_within_limits;
mod emptydir_size_limit_max;
mod emptydir_size_limit_required;
mod emptydir_within_ephemeral_storage;
mod mount_path_absolute;
mod mount_path_nested;
mod mount_path_reserved;
mod mount_path_unique;
mod mount_readonly_source;
mod mount_volume_exists;
mod volume_name_unique;
mod volume_type_allowed;
mod volume_unused;

#[cfg(test)]
pub(crate) mod testutil;

/// Stable rule identifiers; the discriminant indexes `RULES` and `RuleSet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleId {
    MountVolumeExists,
    VolumeNameUnique,
    MountPathUnique,
    MountPathAbsolute,
    MountPathNested,
    MountPathReserved,
    VolumeUnused,
    MountReadonlySource,
    VolumeTypeAllowed,
    EmptydirSizeLimitRequired,
    EmptydirSizeLimitMax,
    EmptydirMemoryWithinLimits,
    EmptydirWithinEphemeralStorage,
    EmptydirEphemeralStorageDeclared,
}

impl RuleId {
    pub fn name(self) -> &'static str {
        RULES[self as usize].name
    }

    pub fn from_name(name: &str) -> Option<RuleId> {
        RULES.iter().find(|r| r.name == name).map(|r| r.id)
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for RuleId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

pub(crate) type CheckFn = fn(&PodCtx<'_>, &RuleConfig, &RuleSet, &mut Vec<Violation>);

/// One entry of the catalogue.
pub struct RuleInfo {
    pub id: RuleId,
    pub name: &'static str,
    /// Options besides `action`.
    pub options: &'static [&'static str],
    pub summary: &'static str,
    pub explanation: &'static str,
    pub(crate) check: CheckFn,
}

macro_rules! rule {
    ($id:ident, $name:literal, $module:ident, [$($opt:literal),*], $summary:literal, $explanation:literal) => {
        RuleInfo {
            id: RuleId::$id,
            name: $name,
            options: &[$($opt),*],
            summary: $summary,
            explanation: $explanation,
            check: $module::check,
        }
    };
}

/// The catalogue, in `RuleId` order.
pub static RULES: [RuleInfo; 14] = [
    rule!(
        MountVolumeExists,
        "mount-volume-exists",
        mount_volume_exists,
        [],
        "a volumeMount or volumeDevice names no volume of the Pod",
        "Every volumeMount and volumeDevice must name a volume declared in spec.volumes (or, for a \
         StatefulSet, a volumeClaimTemplate). The apiserver rejects a Pod that breaks this, but a \
         workload template is only checked when its Pods are created, so the mistake surfaces as a \
         ReplicaSet that silently cannot create Pods."
    ),
    rule!(
        VolumeNameUnique,
        "volume-name-unique",
        volume_name_unique,
        [],
        "two volumes share a name",
        "Volume names must be unique within a Pod; mounts refer to volumes by name, so a duplicate \
         makes it ambiguous which source a container gets."
    ),
    rule!(
        MountPathUnique,
        "mount-path-unique",
        mount_path_unique,
        [],
        "two mounts of one container resolve to the same path",
        "Within one container, two volumeMounts (or a mount and a volumeDevice) that resolve to the \
         same path after normalisation (relative made absolute, `.`, `..`, repeated and trailing `/` \
         removed) hide one another: only one of them is visible to the process."
    ),
    rule!(
        MountPathAbsolute,
        "mount-path-absolute",
        mount_path_absolute,
        [],
        "a mountPath that is not absolute",
        "The kubelet prefixes `/` to a relative mountPath, so `data` silently becomes `/data`. \
         Writing the absolute path says what actually happens."
    ),
    rule!(
        MountPathNested,
        "mount-path-nested",
        mount_path_nested,
        [],
        "a mount strictly inside another mount of the same container",
        "A mount at `/data/cache` inside a mount at `/data` shadows part of the outer volume and \
         depends on mount order; files written there do not land in the outer volume. `/data` and \
         `/database` are not nested."
    ),
    rule!(
        MountPathReserved,
        "mount-path-reserved",
        mount_path_reserved,
        ["paths"],
        "a mountPath that hits a reserved system path",
        "Mounting over `/etc`, `/proc`, `/sys`, `/usr` or `/` replaces what the image and the \
         runtime put there and breaks the container or weakens its isolation. Entries of `paths` \
         match exactly, or with a trailing `/**` the path and everything below it, so `/dev/shm` \
         and `/etc/app` stay allowed by default."
    ),
    rule!(
        VolumeUnused,
        "volume-unused",
        volume_unused,
        [],
        "a volume no container mounts or uses as a device",
        "A volume nobody mounts is usually a typo in a mount's name or a leftover; it still costs \
         the kubelet work (and, for a PVC, an attachment)."
    ),
    rule!(
        MountReadonlySource,
        "mount-readonly-source",
        mount_readonly_source,
        [],
        "a read-only volume source mounted writable",
        "A volume whose source declares `readOnly: true` (a PVC, CSI, NFS, iSCSI, ... source) is \
         mounted read-only whatever the mount says; a mount without `readOnly: true` promises a \
         writable directory the application will not get."
    ),
    rule!(
        VolumeTypeAllowed,
        "volume-type-allowed",
        volume_type_allowed,
        ["allowed"],
        "a volume type outside the allowed list",
        "Restricts volume sources to an allowed list of source keys (e.g. to forbid `hostPath`). \
         The default list is the Pod Security Standards `restricted` set. Off by default."
    ),
    rule!(
        EmptydirSizeLimitRequired,
        "emptydir-size-limit-required",
        emptydir_size_limit_required,
        ["media"],
        "an emptyDir without sizeLimit",
        "An emptyDir without `sizeLimit` can fill the node's disk (or, memory-backed, its memory) \
         until the kubelet evicts Pods. `media` selects which emptyDirs need one: `disk`, \
         `memory` or both. HugePages-backed emptyDirs are bounded by hugepage limits and exempt."
    ),
    rule!(
        EmptydirSizeLimitMax,
        "emptydir-size-limit-max",
        emptydir_size_limit_max,
        ["maxDisk", "maxMemory", "maxTotal"],
        "an emptyDir sizeLimit above the maximum, or not a positive quantity",
        "Caps each emptyDir's `sizeLimit` by medium (`maxDisk`, `maxMemory`) and optionally the \
         sum over the Pod (`maxTotal`). A `sizeLimit` that is zero, negative or not a valid \
         quantity is also reported. Quantities compare exactly: `10240Mi` equals `10Gi`."
    ),
    rule!(
        EmptydirMemoryWithinLimits,
        "emptydir-memory-within-limits",
        emptydir_memory_within_limits,
        [],
        "memory-backed emptyDirs that do not fit the Pod's memory limit",
        "A `medium: Memory` emptyDir is tmpfs and its pages count against the Pod's memory limit. \
         The summed `sizeLimit`s must fit the Pod's memory limit (pod-level \
         `spec.resources.limits.memory`, else the sum of the regular containers' limits); a Pod \
         with a memory-backed emptyDir and no memory limit (any container without one) is \
         reported too."
    ),
    rule!(
        EmptydirWithinEphemeralStorage,
        "emptydir-within-ephemeral-storage",
        emptydir_within_ephemeral_storage,
        [],
        "disk emptyDirs larger than the Pod's ephemeral-storage limit",
        "Disk-backed emptyDirs count against the Pod's ephemeral-storage limit (pod-level, else \
         the sum over regular containers when every one sets it). If their `sizeLimit`s add up to \
         more, the kubelet evicts the Pod before the volumes are full."
    ),
    rule!(
        EmptydirEphemeralStorageDeclared,
        "emptydir-ephemeral-storage-declared",
        emptydir_ephemeral_storage_declared,
        [],
        "a container mounting a disk emptyDir without ephemeral-storage requests and limits",
        "Without ephemeral-storage requests the scheduler cannot place the Pod where the disk \
         exists, and without limits the kubelet cannot attribute usage. Off by default."
    ),
];

/// One finding of one rule, before the policy decides what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: RuleId,
    /// Field path inside the object as written, e.g. `spec.template.spec.volumes[0].emptyDir`.
    pub path: String,
    /// What is wrong, naming the volume or container, and how to fix it.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.rule, self.path, self.message)
    }
}

/// Which list of the PodSpec a container sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    Regular,
    Init,
    Ephemeral,
}

impl ContainerKind {
    pub fn field(self) -> &'static str {
        match self {
            ContainerKind::Regular => "containers",
            ContainerKind::Init => "initContainers",
            ContainerKind::Ephemeral => "ephemeralContainers",
        }
    }
}

/// A container with its position and its normalised mount paths.
pub struct ContainerRef<'a> {
    pub kind: ContainerKind,
    pub index: usize,
    pub c: &'a Container,
    /// `paths::normalize` of each volumeMount's mountPath, in order.
    pub mount_paths: Vec<Cow<'a, str>>,
}

impl ContainerRef<'_> {
    pub fn path(&self, prefix: &str) -> String {
        format!("{prefix}{}[{}]", self.kind.field(), self.index)
    }
    pub fn mount_path(&self, prefix: &str, j: usize) -> String {
        format!(
            "{prefix}{}[{}].volumeMounts[{j}]",
            self.kind.field(),
            self.index
        )
    }
    pub fn device_path(&self, prefix: &str, j: usize) -> String {
        format!(
            "{prefix}{}[{}].volumeDevices[{j}]",
            self.kind.field(),
            self.index
        )
    }
}

/// Everything the rules read about one Pod spec, computed once per evaluation.
pub struct PodCtx<'a> {
    /// Field-path prefix of the PodSpec, e.g. `spec.` or `spec.template.spec.`.
    pub prefix: &'static str,
    pub spec: &'a Spec,
    /// StatefulSet volumeClaimTemplates names (they count as volumes for mounts).
    pub claim_templates: Vec<&'a str>,
    pub containers: Vec<ContainerRef<'a>>,
    /// First index of each volume name.
    volume_index: HashMap<&'a str, usize>,
    /// Parsed `emptyDir.sizeLimit` per volume (None: no emptyDir or no sizeLimit).
    size_limits: Vec<Option<Result<Quantity, QuantityError>>>,
    memory_limit: OnceCell<Result<Quantity, Vec<&'a str>>>,
    ephemeral_limit: OnceCell<Result<Quantity, Vec<&'a str>>>,
}

/// The resources whose Pod-wide limit the emptyDir rules compare against.
#[derive(Debug, Clone, Copy)]
pub enum LimitKind {
    Memory,
    EphemeralStorage,
}

impl<'a> PodCtx<'a> {
    pub fn new(prefix: &'static str, spec: &'a Spec, claim_templates: Vec<&'a str>) -> Self {
        let mut volume_index = HashMap::with_capacity(spec.volumes.len());
        for (i, v) in spec.volumes.iter().enumerate() {
            volume_index.entry(v.name.as_str()).or_insert(i);
        }
        let lists = [
            (ContainerKind::Regular, &spec.containers),
            (ContainerKind::Init, &spec.init_containers),
            (ContainerKind::Ephemeral, &spec.ephemeral_containers),
        ];
        let containers = lists
            .into_iter()
            .flat_map(|(kind, list)| {
                list.iter().enumerate().map(move |(index, c)| ContainerRef {
                    kind,
                    index,
                    c,
                    mount_paths: c
                        .volume_mounts
                        .iter()
                        .map(|m| paths::normalize(&m.mount_path))
                        .collect(),
                })
            })
            .collect();
        let size_limits = spec
            .volumes
            .iter()
            .map(|v| {
                let raw = v.empty_dir.as_ref()?.size_limit.as_ref()?;
                Some(Quantity::parse(&raw.0))
            })
            .collect();
        PodCtx {
            prefix,
            spec,
            claim_templates,
            containers,
            volume_index,
            size_limits,
            memory_limit: OnceCell::new(),
            ephemeral_limit: OnceCell::new(),
        }
    }

    pub fn volumes(&self) -> &'a [Volume] {
        &self.spec.volumes
    }

    /// The volume a mount or device name refers to (first one of that name).
    pub fn volume(&self, name: &str) -> Option<(usize, &'a Volume)> {
        self.volume_index
            .get(name)
            .map(|&i| (i, &self.spec.volumes[i]))
    }

    pub fn is_claim_template(&self, name: &str) -> bool {
        self.claim_templates.contains(&name)
    }

    pub fn volume_path(&self, i: usize) -> String {
        format!("{}volumes[{i}]", self.prefix)
    }

    pub fn regular_containers(&self) -> impl Iterator<Item = &ContainerRef<'a>> {
        self.containers
            .iter()
            .filter(|c| c.kind == ContainerKind::Regular)
    }

    /// Every emptyDir volume with its index and medium.
    pub fn empty_dirs(&self) -> impl Iterator<Item = (usize, &'a Volume, &'a EmptyDir, Medium)> {
        self.spec
            .volumes
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.empty_dir.as_ref().map(|e| (i, v, e, e.medium())))
    }

    /// The parsed sizeLimit of volume `i`: `None` when unset (or not an emptyDir).
    pub fn size_limit(&self, i: usize) -> Option<&Result<Quantity, QuantityError>> {
        self.size_limits.get(i).and_then(Option::as_ref)
    }

    /// The Pod's limit for one resource: the pod-level limit if set, else the sum over the
    /// regular containers when every one of them sets it. `Err` lists the containers without
    /// one (empty when there are no containers). Computed once per evaluation.
    pub fn pod_limit(&self, kind: LimitKind) -> &Result<Quantity, Vec<&'a str>> {
        match kind {
            LimitKind::Memory => self
                .memory_limit
                .get_or_init(|| self.compute_limit(|r| r.memory.as_ref())),
            LimitKind::EphemeralStorage => self
                .ephemeral_limit
                .get_or_init(|| self.compute_limit(|r| r.ephemeral_storage.as_ref())),
        }
    }

    fn compute_limit(
        &self,
        pick: fn(&ResourceList) -> Option<&RawQuantity>,
    ) -> Result<Quantity, Vec<&'a str>> {
        let limit_of = |r: &'a Option<crate::model::Resources>| {
            r.as_ref()
                .and_then(|r| r.limits.as_ref())
                .and_then(pick)
                .and_then(|raw| Quantity::parse(&raw.0).ok())
        };
        if let Some(q) = limit_of(&self.spec.resources) {
            return Ok(q);
        }
        let mut sum = Quantity::ZERO;
        let mut missing = Vec::new();
        let mut any = false;
        for c in self.regular_containers() {
            any = true;
            match limit_of(&c.c.resources) {
                Some(q) => sum = sum.checked_add(q).unwrap_or(sum),
                None => missing.push(c.c.name.as_str()),
            }
        }
        if any && missing.is_empty() {
            Ok(sum)
        } else {
            Err(missing)
        }
    }
}

/// The first emptyDir at which the running sum of valid, positive sizeLimits exceeds `limit`,
/// with that sum.
pub fn first_over<'v>(
    ctx: &PodCtx<'_>,
    dirs: impl Iterator<Item = (usize, &'v Volume, &'v EmptyDir, Medium)>,
    limit: Quantity,
) -> Option<(usize, &'v Volume, Quantity)> {
    let mut sum = Quantity::ZERO;
    for (i, v, _, _) in dirs {
        if let Some(Ok(q)) = ctx.size_limit(i)
            && q.is_positive()
        {
            let q = *q;
            sum = sum.checked_add(q)?;
            if sum > limit {
                return Some((i, v, sum));
            }
        }
    }
    None
}

/// `"a", "b" and 2 more` for messages.
pub fn name_list(names: &[&str]) -> String {
    let shown: Vec<String> = names.iter().take(2).map(|n| q(n)).collect();
    match names.len() {
        0 => "none".to_owned(),
        1 | 2 => shown.join(" and "),
        n => format!("{} and {} more", shown.join(", "), n - 2),
    }
}

/// Quotes a user-supplied string for a message, shortening long ones so every line stays
/// well under the apiserver's 256-character warning limit.
pub fn q(s: &str) -> String {
    const MAX: usize = 24;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX - 8).collect();
        let tail: String = {
            let v: Vec<char> = s.chars().rev().take(6).collect();
            v.into_iter().rev().collect()
        };
        format!("{:?}", format!("{head}…{tail}"))
    }
}

/// The longest violation line (`[rule] path: message`), in bytes: the apiserver truncates
/// warnings above 256 characters.
pub const MAX_LINE: usize = 255;

/// Cuts a message so its whole line fits `MAX_LINE` (a last resort: names are already
/// shortened by `q`, so this only bites on long paths with several long names).
fn fit(v: &mut Violation) {
    let overhead = v.rule.name().len() + v.path.len() + 5;
    let budget = MAX_LINE.saturating_sub(overhead).max(16);
    if v.message.len() > budget {
        let mut cut = budget - 3;
        while !v.message.is_char_boundary(cut) {
            cut -= 1;
        }
        v.message.truncate(cut);
        v.message.push_str("...");
    }
}

/// Runs every enabled rule over one Pod view.
pub(crate) fn run_all(
    ctx: &PodCtx<'_>,
    rules: &RuleSet,
    skip: &dyn Fn(RuleId) -> bool,
    out: &mut Vec<Violation>,
) {
    let start = out.len();
    for info in &RULES {
        let cfg = rules.get(info.id);
        if cfg.action == crate::policy::Action::Off || skip(info.id) {
            continue;
        }
        (info.check)(ctx, cfg, rules, out);
    }
    for v in &mut out[start..] {
        fit(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_in_id_order_with_unique_kebab_names() {
        for (i, r) in RULES.iter().enumerate() {
            assert_eq!(r.id as usize, i, "{}", r.name);
            assert!(
                r.name.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{}",
                r.name
            );
            assert_eq!(RuleId::from_name(r.name), Some(r.id));
        }
        let mut names: Vec<_> = RULES.iter().map(|r| r.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), RULES.len());
    }

    #[test]
    fn quoting_shortens_long_names() {
        assert_eq!(q("data"), "\"data\"");
        let long = "x".repeat(200);
        assert!(q(&long).chars().count() <= 26);
    }
}
