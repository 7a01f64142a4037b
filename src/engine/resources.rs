//! A Pod's effective requests and limits, computed exactly as Kubernetes does.
//!
//! * [`aggregate_container`], [`pod_limits`], [`pod_requests`]: `k8s.io/component-helpers`
//!   `resource/helpers.go` (`AggregateContainerRequests`, `AggregateContainerLimits`,
//!   `PodRequests`, `PodLimits`) at v0.36.3: regular containers summed; sidecars (init
//!   containers with `restartPolicy: Always`) added; each classic init container max'ed, with
//!   the sidecars started before it; pod-level `spec.resources` replacing the aggregate for the
//!   resources Kubernetes supports there (cpu, memory); `spec.overhead` added (to limits only
//!   where a non-zero limit exists).
//! * [`memory_cgroup_limit`]: the kubelet's `ResourceConfigForPod`
//!   (`pkg/kubelet/cm/helpers_linux.go`): whether the Pod cgroup gets a memory limit at all,
//!   and its value. This is the limit tmpfs pages count against, and what
//!   `calculateEmptyDirMemorySize` sizes a `medium: Memory` emptyDir with.
//! * [`ephemeral_storage_limit`]: the eviction manager's `podEphemeralStorageLimitEviction`
//!   (`PodLimits(pod, {})`): present as soon as one container sets it.
//!
//! Facts and citations: `tests/data/resources/NOTES.md`; the upstream test tables are ported
//! as data in `tests/data/resources/pod_{limits,requests}.yaml` and checked below.
//!
//! Values are exact (`Quantity`). A value that is not a quantity is treated as absent: the
//! apiserver refuses such an object before any Pod exists.

use crate::engine::model::{RawQuantity, ResourceList, Resources, Spec};
use crate::engine::quantity::Quantity;

/// The resources the engine computes (the others do not bear on any rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Cpu,
    Memory,
    EphemeralStorage,
}

impl Resource {
    pub const ALL: [Resource; 3] = [Resource::Cpu, Resource::Memory, Resource::EphemeralStorage];

    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::EphemeralStorage => "ephemeral-storage",
        }
    }

    fn raw<'l>(self, list: &'l ResourceList<'l>) -> Option<&'l RawQuantity<'l>> {
        match self {
            Resource::Cpu => list.cpu.as_ref(),
            Resource::Memory => list.memory.as_ref(),
            Resource::EphemeralStorage => list.ephemeral_storage.as_ref(),
        }
    }

    /// `IsSupportedPodLevelResource`: cpu, memory (and hugepages-*, not computed here).
    fn pod_level(self) -> bool {
        matches!(self, Resource::Cpu | Resource::Memory)
    }
}

/// A `ResourceList` restricted to [`Resource`]: `None` is an absent key (not zero, not
/// "unlimited").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct List([Option<Quantity>; 3]);

impl List {
    pub fn get(&self, r: Resource) -> Option<Quantity> {
        self.0[r as usize]
    }

    fn set(&mut self, r: Resource, q: Option<Quantity>) {
        self.0[r as usize] = q;
    }

    /// Parses a written list; a value that is not a quantity is left out.
    pub fn parse(list: Option<&ResourceList>) -> List {
        let mut out = List::default();
        if let Some(list) = list {
            for r in Resource::ALL {
                out.set(r, r.raw(list).and_then(|q| Quantity::parse(&q.0).ok()));
            }
        }
        out
    }

    /// `addResourceList`: adds every key of `other`, creating missing ones. A sum too large
    /// to hold exactly drops the key (no comparison is then made against it).
    fn add(&mut self, other: &List) {
        for r in Resource::ALL {
            if let Some(b) = other.get(r) {
                let sum = match self.get(r) {
                    Some(a) => a.checked_add(b),
                    None => Some(b),
                };
                self.set(r, sum);
            }
        }
    }

    /// `maxResourceList`: per key, the larger value; a key only one side has is kept.
    fn max(&mut self, other: &List) {
        for r in Resource::ALL {
            if let Some(b) = other.get(r)
                && self.get(r).is_none_or(|a| b > a)
            {
                self.set(r, Some(b));
            }
        }
    }
}

/// Requests or limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Requests,
    Limits,
}

impl Kind {
    fn of<'l>(self, r: &'l Option<Resources<'l>>) -> Option<&'l ResourceList<'l>> {
        let r = r.as_ref()?;
        match self {
            Kind::Requests => r.requests.as_ref(),
            Kind::Limits => r.limits.as_ref(),
        }
    }
}

/// `PodResourcesOptions` (the fields that depend on the spec alone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub exclude_overhead: bool,
    pub skip_pod_level_resources: bool,
}

/// Which list `ContainerFn` is called with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerType {
    Regular,
    Init,
}

/// `AggregateContainerRequests` / `AggregateContainerLimits`: `max(sum of the regular
/// containers and sidecars, max over init containers of their effective list)`. `each` is
/// `ContainerFn`: it sees each regular container's own list and each init container's
/// effective list (a sidecar: the sidecars so far, itself included; a classic init
/// container: its own list plus the sidecars started before it).
pub fn aggregate_container(
    spec: &Spec,
    kind: Kind,
    each: &mut dyn FnMut(&List, ContainerType),
) -> List {
    let mut sum = List::default();
    for c in &spec.containers {
        let l = List::parse(kind.of(&c.resources));
        each(&l, ContainerType::Regular);
        sum.add(&l);
    }
    let mut sidecars = List::default();
    let mut init_max = List::default();
    for c in &spec.init_containers {
        let own = List::parse(kind.of(&c.resources));
        let effective = if c.is_restartable() {
            sum.add(&own);
            sidecars.add(&own);
            sidecars
        } else {
            let mut l = own;
            l.add(&sidecars);
            l
        };
        each(&effective, ContainerType::Init);
        init_max.max(&effective);
    }
    sum.max(&init_max);
    sum
}

/// Pod-level `spec.resources` of `kind`, for the resources supported there.
fn pod_level(spec: &Spec, kind: Kind) -> List {
    let mut l = List::parse(kind.of(&spec.resources));
    for r in Resource::ALL {
        if !r.pod_level() {
            l.set(r, None);
        }
    }
    l
}

/// `IsPodLevelResourcesSet` restricted to cpu and memory (a hugepages-only pod-level list
/// makes it true too, but then replaces none of the resources computed here).
fn pod_level_set(spec: &Spec) -> bool {
    [Kind::Requests, Kind::Limits]
        .into_iter()
        .any(|k| pod_level(spec, k) != List::default())
}

/// `PodLimits` (with `ContainerFn` = `each`).
pub fn pod_limits_with(
    spec: &Spec,
    opts: Options,
    each: &mut dyn FnMut(&List, ContainerType),
) -> List {
    let mut limits = aggregate_container(spec, Kind::Limits, each);
    if !opts.skip_pod_level_resources && pod_level_set(spec) {
        let pod = pod_level(spec, Kind::Limits);
        for r in Resource::ALL {
            if let Some(q) = pod.get(r) {
                limits.set(r, Some(q));
            }
        }
    }
    if !opts.exclude_overhead {
        // Overhead only raises limits that exist and are non-zero.
        let overhead = List::parse(spec.overhead.as_ref());
        for r in Resource::ALL {
            if let (Some(l), Some(o)) = (limits.get(r), overhead.get(r))
                && l.is_positive()
            {
                limits.set(r, l.checked_add(o));
            }
        }
    }
    limits
}

/// `PodLimits`.
pub fn pod_limits(spec: &Spec, opts: Options) -> List {
    pod_limits_with(spec, opts, &mut |_, _| {})
}

/// `PodRequests`.
pub fn pod_requests(spec: &Spec, opts: Options) -> List {
    let mut requests = aggregate_container(spec, Kind::Requests, &mut |_, _| {});
    if !opts.skip_pod_level_resources && pod_level_set(spec) {
        // `IsPodLevelRequestsSet`: the supported pod-level requests replace the aggregate.
        let pod = pod_level(spec, Kind::Requests);
        for r in Resource::ALL {
            if let Some(q) = pod.get(r) {
                requests.set(r, Some(q));
            }
        }
    }
    if !opts.exclude_overhead {
        requests.add(&List::parse(spec.overhead.as_ref()));
    }
    requests
}

/// The kubelet minors whose `ResourceConfigForPod` decides "the Pod has a memory limit"
/// differently (`pkg/kubelet/cm/helpers_linux.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kubelet {
    /// 1.32 to 1.36: the `ContainerFn` of `PodLimits` sees each regular container's limits
    /// and each init container's *effective* limits (its own plus those of the sidecars
    /// started before it; a sidecar's: the sidecars so far), so a limited sidecar covers the
    /// classic init containers after it.
    V1_32To1_36,
    /// 1.37: `podutil.ContainerIter(InitContainers|Containers)`, container by container:
    /// every init container (sidecar or not) and every regular container must declare a
    /// non-zero memory limit of its own.
    V1_37,
}

impl Kubelet {
    /// The kubelet minors volguard supports, oldest first.
    pub const SUPPORTED: [Kubelet; 2] = [Kubelet::V1_32To1_36, Kubelet::V1_37];
}

/// Whether `kubelet`'s `ResourceConfigForPod` gives the Pod cgroup a memory limit
/// (`memoryLimitsDeclared`, with the `PodLevelResources` gate on: the apiserver drops
/// `spec.resources` when it is off). A non-zero pod-level `spec.resources.limits.memory`
/// declares one on every minor. (QoS does not change this: a Guaranteed Pod always meets
/// the condition, a BestEffort one never does.) Ephemeral containers never count.
pub fn memory_limit_declared(spec: &Spec, kubelet: Kubelet) -> bool {
    if pod_level(spec, Kind::Limits)
        .get(Resource::Memory)
        .is_some_and(|q| q.is_positive())
    {
        return true;
    }
    let positive = |l: &List| l.get(Resource::Memory).is_some_and(|q| q.is_positive());
    match kubelet {
        Kubelet::V1_32To1_36 => {
            let mut declared = true;
            pod_limits_with(spec, Options::default(), &mut |l, _| {
                declared &= positive(l);
            });
            declared
        }
        Kubelet::V1_37 => spec
            .init_containers
            .iter()
            .chain(&spec.containers)
            .all(|c| positive(&List::parse(Kind::Limits.of(&c.resources)))),
    }
}

/// The Pod cgroup's memory limit, or `None` when the Pod cgroup gets no memory limit on
/// some supported kubelet minor ([`Kubelet::SUPPORTED`]): a tmpfs counts as bounded only if
/// it is bounded wherever the Pod may run.
///
/// Its value is `PodLimits`' memory, overhead included (the same on every minor). A zero
/// value is no limit: `calculateEmptyDirMemorySize` only uses a positive one.
pub fn memory_cgroup_limit(spec: &Spec) -> Option<Quantity> {
    let everywhere = Kubelet::SUPPORTED
        .iter()
        .all(|k| memory_limit_declared(spec, *k));
    everywhere.then(|| pod_memory_limit(spec)).flatten()
}

/// The Pod cgroup's memory limit on the supported kubelet minors that set one, or `None`
/// when none does. The value is the same wherever there is one; this is the limit a tmpfs
/// can outgrow (and get the Pod OOM-killed) on some node, where [`memory_cgroup_limit`] is
/// the limit that bounds a tmpfs on every node.
pub fn memory_cgroup_limit_on_some_minor(spec: &Spec) -> Option<Quantity> {
    let somewhere = Kubelet::SUPPORTED
        .iter()
        .any(|k| memory_limit_declared(spec, *k));
    somewhere.then(|| pod_memory_limit(spec)).flatten()
}

/// `PodLimits`' memory when positive: the Pod cgroup's limit wherever the kubelet sets one.
fn pod_memory_limit(spec: &Spec) -> Option<Quantity> {
    pod_limits(spec, Options::default())
        .get(Resource::Memory)
        .filter(Quantity::is_positive)
}

/// The Pod's ephemeral-storage limit the eviction manager enforces
/// (`podEphemeralStorageLimitEviction`: `PodLimits(pod, {})`): the sum of the limits that
/// exist (sidecars included, init containers max'ed, overhead added), so present as soon as
/// one container sets it. ephemeral-storage is not a pod-level resource: `spec.resources`
/// does not count.
pub fn ephemeral_storage_limit(spec: &Spec) -> Option<Quantity> {
    pod_limits(spec, Options::default()).get(Resource::EphemeralStorage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(serde::Deserialize)]
    struct Row<'a> {
        name: String,
        source: String,
        function: String,
        #[serde(borrow)]
        pod: Spec<'a>,
        #[serde(default)]
        options: BTreeMap<String, bool>,
        expect: BTreeMap<String, String>,
    }

    fn options(row: &Row) -> Options {
        for k in row.options.keys() {
            assert!(
                matches!(
                    k.as_str(),
                    "ExcludeOverhead" | "SkipPodLevelResources" | "UseStatusResources"
                ),
                "{}: unknown option {k}",
                row.name
            );
        }
        assert_ne!(
            row.options.get("UseStatusResources"),
            Some(&true),
            "{}: status rows are not ported",
            row.name
        );
        Options {
            exclude_overhead: row.options.get("ExcludeOverhead") == Some(&true),
            skip_pod_level_resources: row.options.get("SkipPodLevelResources") == Some(&true),
        }
    }

    /// Runs every row of a ported table; returns how many rows were checked.
    fn check_table(yaml: &str) -> usize {
        let rows: Vec<Row> = serde_yaml_ng::from_str(yaml).expect("table parses");
        for row in &rows {
            assert!(
                row.source.contains("component-helpers@v0.36.3"),
                "{}",
                row.name
            );
            let got = match row.function.as_str() {
                "PodLimits" => pod_limits(&row.pod, options(row)),
                "PodRequests" => pod_requests(&row.pod, options(row)),
                "AggregateContainerLimits" => {
                    aggregate_container(&row.pod, Kind::Limits, &mut |_, _| {})
                }
                "AggregateContainerRequests" => {
                    aggregate_container(&row.pod, Kind::Requests, &mut |_, _| {})
                }
                f => panic!("{}: unknown function {f}", row.name),
            };
            for r in Resource::ALL {
                let want = row
                    .expect
                    .get(r.name())
                    .map(|s| Quantity::parse(s).expect("expected quantity parses"));
                assert_eq!(
                    got.get(r),
                    want,
                    "{} [{}]: {}",
                    row.name,
                    row.function,
                    r.name()
                );
            }
        }
        rows.len()
    }

    // kubernetes/component-helpers@v0.36.3 resource/helpers_test.go: TestPodRequestsAndLimits,
    // TestPodRequestsAndLimitsWithoutOverhead, TestPodResourceLimits,
    // TestAggregateContainerRequestsAndLimits (+ rows derived from helpers.go:PodLimits).
    #[test]
    fn pod_limits_table() {
        let n = check_table(include_str!("../../tests/data/resources/pod_limits.yaml"));
        assert!(n >= 43, "{n} rows");
    }

    // kubernetes/component-helpers@v0.36.3 resource/helpers_test.go: TestPodRequestsAndLimits,
    // TestPodRequestsAndLimitsWithoutOverhead, TestPodResourceRequests,
    // TestPodLevelResourceRequests, TestAggregateContainerRequestsAndLimits.
    #[test]
    fn pod_requests_table() {
        let n = check_table(include_str!("../../tests/data/resources/pod_requests.yaml"));
        assert!(n >= 44, "{n} rows");
    }

    fn spec(yaml: &str) -> Spec<'_> {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn q(s: &str) -> Option<Quantity> {
        Some(Quantity::parse(s).unwrap())
    }

    // kubernetes/kubernetes pkg/kubelet/cm/helpers_linux.go:ResourceConfigForPod (memory),
    // as summarised in tests/data/resources/NOTES.md "Pod memory cgroup": `memoryLimitsDeclared`
    // at v1.36 (the `ContainerFn` of `PodLimits`: effective init-container limits) and at
    // v1.37.2 (`podutil.ContainerIter(&pod.Spec, InitContainers|Containers)`: each
    // container's own limit), then the limit volguard uses: bounded on both, or none.
    #[rstest::rstest]
    #[case::all_limited(
        "containers: [{resources: {limits: {memory: 1Gi}}}, {resources: {limits: {memory: 1Gi}}}]",
        true,
        true,
        Some("2Gi")
    )]
    #[case::one_unlimited(
        "containers: [{resources: {limits: {memory: 1Gi}}}, {}]",
        false,
        false,
        None
    )]
    #[case::zero_limit(
        "containers: [{resources: {limits: {memory: '0'}}}]",
        false,
        false,
        None
    )]
    #[case::no_containers("containers: []", true, true, None)]
    #[case::sidecar_added(
        "initContainers: [{restartPolicy: Always, resources: {limits: {memory: 1Gi}}}]\ncontainers: [{resources: {limits: {memory: 1Gi}}}]",
        true,
        true,
        Some("2Gi")
    )]
    #[case::sidecar_unlimited(
        "initContainers: [{restartPolicy: Always}]\ncontainers: [{resources: {limits: {memory: 1Gi}}}]",
        false,
        false,
        None
    )]
    #[case::init_larger(
        "initContainers: [{resources: {limits: {memory: 3Gi}}}]\ncontainers: [{resources: {limits: {memory: 1Gi}}}]",
        true,
        true,
        Some("3Gi")
    )]
    #[case::init_unlimited(
        "initContainers: [{}]\ncontainers: [{resources: {limits: {memory: 1Gi}}}]",
        false,
        false,
        None
    )]
    // The two minors disagree: a limited sidecar folded into the init container after it
    // (1.36) is no limit of that init container's own (1.37). Unbounded on a 1.37 node.
    #[case::init_unlimited_after_limited_sidecar(
        "initContainers: [{restartPolicy: Always, resources: {limits: {memory: 100Mi}}}, {}]\ncontainers: [{resources: {limits: {memory: 1Gi}}}]",
        true,
        false,
        None
    )]
    #[case::sidecar_unlimited_after_limited_sidecar(
        "initContainers: [{restartPolicy: Always, resources: {limits: {memory: 100Mi}}}, {restartPolicy: Always}]\ncontainers: [{resources: {limits: {memory: 1Gi}}}]",
        true,
        false,
        None
    )]
    #[case::every_init_container_limited(
        "initContainers: [{restartPolicy: Always, resources: {limits: {memory: 100Mi}}}, {resources: {limits: {memory: 50Mi}}}]\ncontainers: [{resources: {limits: {memory: 1Gi}}}]",
        true,
        true,
        Some("1124Mi")
    )]
    // Ephemeral containers are in neither iteration.
    #[case::ephemeral_unlimited(
        "ephemeralContainers: [{}]\ncontainers: [{resources: {limits: {memory: 1Gi}}}]",
        true,
        true,
        Some("1Gi")
    )]
    #[case::overhead(
        "overhead: {memory: 100Mi}\ncontainers: [{resources: {limits: {memory: 1Gi}}}]",
        true,
        true,
        Some("1124Mi")
    )]
    #[case::overhead_without_limits(
        "overhead: {memory: 100Mi}\ncontainers: [{}]",
        false,
        false,
        None
    )]
    #[case::pod_level(
        "resources: {limits: {memory: 4Gi}}\ncontainers: [{}, {resources: {limits: {memory: 1Gi}}}]",
        true,
        true,
        Some("4Gi")
    )]
    #[case::pod_level_covers_unlimited_init(
        "resources: {limits: {memory: 4Gi}}\ninitContainers: [{}]\ncontainers: [{}]",
        true,
        true,
        Some("4Gi")
    )]
    #[case::pod_level_plus_overhead(
        "resources: {limits: {memory: 4Gi}}\noverhead: {memory: 1Gi}\ncontainers: [{}]",
        true,
        true,
        Some("5Gi")
    )]
    #[case::pod_level_requests_only(
        "resources: {requests: {memory: 4Gi}}\ncontainers: [{}]",
        false,
        false,
        None
    )]
    #[case::pod_level_cpu_only(
        "resources: {limits: {cpu: '1'}}\ncontainers: [{resources: {limits: {memory: 1Gi}}}]",
        true,
        true,
        Some("1Gi")
    )]
    fn memory_cgroup(
        #[case] yaml: &str,
        #[case] v1_36: bool,
        #[case] v1_37: bool,
        #[case] want: Option<&str>,
    ) {
        let spec = spec(yaml);
        assert_eq!(
            memory_limit_declared(&spec, Kubelet::V1_32To1_36),
            v1_36,
            "1.36: {yaml}"
        );
        assert_eq!(
            memory_limit_declared(&spec, Kubelet::V1_37),
            v1_37,
            "1.37: {yaml}"
        );
        assert_eq!(memory_cgroup_limit(&spec), want.and_then(q), "{yaml}");
        // On some minor: the limit exists wherever either rule declares it.
        let some = memory_cgroup_limit_on_some_minor(&spec);
        if v1_36 || v1_37 {
            assert_eq!(
                some,
                pod_limits(&spec, Options::default())
                    .get(Resource::Memory)
                    .filter(Quantity::is_positive),
                "{yaml}"
            );
        } else {
            assert_eq!(some, None, "{yaml}");
        }
        if want.is_some() {
            assert_eq!(some, want.and_then(q), "{yaml}");
        }
    }

    // kubernetes/kubernetes pkg/kubelet/eviction/eviction_manager.go:
    // podEphemeralStorageLimitEviction (PodLimits(pod, {})).
    #[rstest::rstest]
    #[case::none("containers: [{}]", None)]
    #[case::partial(
        "containers: [{resources: {limits: {ephemeral-storage: 2Gi}}}, {}]",
        Some("2Gi")
    )]
    #[case::sidecar(
        "initContainers: [{restartPolicy: Always, resources: {limits: {ephemeral-storage: 1Gi}}}]\ncontainers: [{resources: {limits: {ephemeral-storage: 1Gi}}}]",
        Some("2Gi")
    )]
    #[case::sidecar_only(
        "initContainers: [{restartPolicy: Always, resources: {limits: {ephemeral-storage: 1Gi}}}]\ncontainers: [{}]",
        Some("1Gi")
    )]
    #[case::pod_level_ignored(
        "resources: {limits: {ephemeral-storage: 9Gi}}\ncontainers: [{}]",
        None
    )]
    #[case::zero(
        "containers: [{resources: {limits: {ephemeral-storage: '0'}}}]",
        Some("0")
    )]
    fn ephemeral(#[case] yaml: &str, #[case] want: Option<&str>) {
        assert_eq!(
            ephemeral_storage_limit(&spec(yaml)),
            want.and_then(q),
            "{yaml}"
        );
    }
}
