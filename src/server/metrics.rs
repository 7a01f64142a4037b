//! Prometheus metrics (prometheus-client), shared by the webhook and the policy sources, plus
//! the standard `process_*` metrics read from `/proc/self` at scrape time. Served as
//! OpenMetrics or Prometheus text 0.0.4, whichever the scraper asks for.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

mod format;
mod labels;
mod process;

pub use format::Format;
pub use labels::*;
use process::{LogDropsCollector, ProcessCollector};
#[cfg(test)]
use process::{proc_cpu_seconds, proc_max_fds, proc_open_fds, proc_start_time, proc_status_bytes};

/// Every metric volguard exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub violations: Family<ViolationLabels, Counter>,
    pub controller_downgrades: Family<DowngradeLabels, Counter>,
    /// `/mutate` requests by kind and result (`patched`, `unchanged`, or why skipped).
    pub mutations: Family<MutationLabels, Counter>,
    pub latency: Histogram,
    pub bad_requests: Family<ReasonLabels, Counter>,
    pub policy_reloads: Family<ResultLabels, Counter>,
    pub cert_reloads: Family<ResultLabels, Counter>,
    pub policy_generation: Gauge,
    pub policy_info: Family<PolicyLabels, Gauge>,
    /// When the policy source (a watched ConfigMap) last confirmed its policy is current,
    /// Unix seconds; absent for a file or the embedded default.
    pub policy_source_last_sync: Family<SourceLabels, Gauge>,
    /// Failed syncs of the policy source, by class.
    pub policy_source_errors: Family<ClassLabels, Counter>,
    /// 1 for the class of the current failure; empty while in sync.
    pub policy_source_failing: Family<ClassLabels, Gauge>,
    /// notAfter of the serving certificate in use, Unix seconds.
    pub cert_not_after: Gauge,
    /// Requests refused or dropped to protect the server, by reason.
    pub shed: Family<ReasonLabels, Counter>,
    /// Evaluations waiting for a worker (set when /metrics is read).
    pub evaluations_queued: Gauge,
    /// Evaluations run on the async worker that read the body (small bodies).
    pub evaluations_inline: Counter,
    /// Evaluations handed to the evaluation pool.
    pub evaluations_pool: Counter,
    /// Bytes of request and response bodies held (set when /metrics is read).
    pub body_memory_bytes: Gauge,
}

/// Upper bounds of the admission latency histogram, in seconds: sub-millisecond resolution
/// where the engine lives (tens of µs) up to the apiserver's default webhook timeout range.
pub const LATENCY_BUCKETS: [f64; 15] = [
    50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3,
    1.0, 2.5,
];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every family registered. `/metrics` shows a registry's metrics in the order they were
    /// registered (then its collectors): the groups are called in that order.
    pub fn new() -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector::new()));
        let registry = root.sub_registry_with_prefix("volguard");
        // One counter per place, fetched once: no label lookup per request.
        let evaluations = Family::<ExecutorLabels, Counter>::default();
        let evaluations_inline = evaluations
            .get_or_create(&ExecutorLabels { executor: "inline" })
            .clone();
        let evaluations_pool = evaluations
            .get_or_create(&ExecutorLabels { executor: "pool" })
            .clone();
        let mut m = Metrics {
            // `root` once everything is registered in it.
            registry: Registry::default(),
            requests: Family::default(),
            violations: Family::default(),
            controller_downgrades: Family::default(),
            mutations: Family::default(),
            latency: Histogram::new(LATENCY_BUCKETS),
            bad_requests: Family::default(),
            policy_reloads: Family::default(),
            cert_reloads: Family::default(),
            policy_generation: Gauge::default(),
            policy_info: Family::default(),
            policy_source_last_sync: Family::default(),
            policy_source_errors: Family::default(),
            policy_source_failing: Family::default(),
            cert_not_after: Gauge::default(),
            shed: Family::default(),
            evaluations_queued: Gauge::default(),
            evaluations_inline,
            evaluations_pool,
            body_memory_bytes: Gauge::default(),
        };
        m.register_admission(registry);
        m.register_reloads(registry);
        m.register_load(registry, evaluations);
        registry.register_collector(Box::new(LogDropsCollector));
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "Build information (value 1)", build);
        registry.register(
            "certificate_not_after_seconds",
            "notAfter of the serving TLS certificate in use, in Unix seconds",
            m.cert_not_after.clone(),
        );
        m.registry = root;
        m
    }

    /// What the webhook answered: requests, violations, downgrades, mutations, latency and
    /// requests rejected before evaluation.
    fn register_admission(&self, registry: &mut Registry) {
        registry.register(
            "admission_requests",
            "Admission requests by kind, operation and verdict",
            self.requests.clone(),
        );
        registry.register(
            "violations",
            "Violations reported, by rule and effective action",
            self.violations.clone(),
        );
        registry.register(
            "controller_downgrades",
            "Objects admitted with warnings instead of denied because a trusted controller (origin=controller) or a node (origin=mirror) created them",
            self.controller_downgrades.clone(),
        );
        registry.register(
            "mutations",
            "Requests to /mutate by kind and result: patched, unchanged, or why not considered",
            self.mutations.clone(),
        );
        registry.register(
            "admission_duration_seconds",
            "Time from request received to response ready, per admission request",
            self.latency.clone(),
        );
        registry.register(
            "bad_requests",
            "Requests rejected before evaluation, by reason",
            self.bad_requests.clone(),
        );
    }

    /// Policy and certificate reloads, the policy in force and the policy source's sync.
    fn register_reloads(&self, registry: &mut Registry) {
        registry.register(
            "policy_reloads",
            "Policy loads by result (success, invalid, error)",
            self.policy_reloads.clone(),
        );
        registry.register(
            "certificate_reloads",
            "TLS certificate loads by result",
            self.cert_reloads.clone(),
        );
        registry.register(
            "policy_generation",
            "Generation of the policy in force (1 = first load)",
            self.policy_generation.clone(),
        );
        registry.register(
            "policy_info",
            "The policy in force: hash and source (value 1)",
            self.policy_info.clone(),
        );
        registry.register(
            "policy_source_last_sync_timestamp_seconds",
            "When the policy source (--policy-configmap) last confirmed its policy is current (a list, a watch opened, an event or bookmark), in Unix seconds",
            self.policy_source_last_sync.clone(),
        );
        registry.register(
            "policy_source_errors",
            "Failed syncs of the policy source by class (unauthorized, forbidden, not_found, throttled, server, timeout, connect, tls, decode, other)",
            self.policy_source_errors.clone(),
        );
        registry.register(
            "policy_source_failing",
            "1 for the class of the policy source's current failure; no series while in sync",
            self.policy_source_failing.clone(),
        );
    }

    /// Load and its protection: shed requests, the evaluation queue and executors, body
    /// memory.
    fn register_load(&self, registry: &mut Registry, evaluations: Family<ExecutorLabels, Counter>) {
        registry.register(
            "shed_requests",
            "Requests refused or dropped under load (queue_full, body_memory, peer_limit, body_evicted, body_timeout, client_gone, deadline)",
            self.shed.clone(),
        );
        registry.register(
            "evaluations_queued",
            "Evaluations waiting for a worker",
            self.evaluations_queued.clone(),
        );
        registry.register(
            "evaluations",
            "Evaluations by where they ran: inline (on the connection's thread, bodies up to --inline-evaluation-max-bytes) or pool",
            evaluations,
        );
        registry.register(
            "body_memory_bytes",
            "Bytes of request and response bodies held (bounded by --body-memory-budget-bytes)",
            self.body_memory_bytes.clone(),
        );
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        self.encode_as(Format::OpenMetrics)
    }

    pub fn encode_as(&self, format: Format) -> String {
        let mut out = String::new();
        match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)
            }
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
        }
        .expect("writing to a String");
        out
    }

    pub fn bad_request(&self, reason: &'static str) {
        self.bad_requests
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn shed(&self, reason: &'static str) {
        self.shed.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn reload(&self, result: &'static str) {
        self.policy_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn cert_reload(&self, result: &'static str) {
        self.cert_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }
}

impl crate::source::PolicyObserver for Metrics {
    fn installed(&self, p: &crate::source::LoadedPolicy) {
        self.policy_generation.set(p.generation as i64);
        self.policy_info.clear();
        self.policy_info
            .get_or_create(&PolicyLabels {
                hash: p.policy.hash.clone(),
                source: p.source.clone(),
            })
            .set(1);
        // Generation 0 is the embedded default the store starts with, not a load.
        if p.generation > 0 {
            self.reload("success");
        }
    }

    fn rejected(&self) {
        self.reload("invalid");
    }

    fn synced(&self, source: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.policy_source_last_sync
            .get_or_create(&SourceLabels {
                source: source.to_owned(),
            })
            .set(now);
        self.policy_source_failing.clear();
    }

    fn sync_failed(&self, class: &'static str) {
        self.policy_source_errors
            .get_or_create(&ClassLabels { class })
            .inc();
        self.policy_source_failing.clear();
        self.policy_source_failing
            .get_or_create(&ClassLabels { class })
            .set(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test that touches the process-wide drop count.
    #[test]
    fn dropped_log_lines_are_counted_once() {
        use std::sync::atomic::Ordering;
        let m = Metrics::new();
        let line = |m: &Metrics| {
            m.encode()
                .lines()
                .find(|l| l.starts_with("volguard_log_lines_dropped_total "))
                .map(str::to_owned)
        };
        let base = super::super::log::DROPPED_LINES.load(Ordering::Relaxed);
        assert_eq!(
            line(&m).as_deref(),
            Some(format!("volguard_log_lines_dropped_total {base}").as_str())
        );
        super::super::log::DROPPED_LINES.fetch_add(3, Ordering::Relaxed);
        // Read, not accumulated: every scrape shows the same total.
        for _ in 0..2 {
            assert_eq!(
                line(&m).as_deref(),
                Some(format!("volguard_log_lines_dropped_total {}", base + 3).as_str())
            );
        }
    }

    #[test]
    fn negotiates_the_format_from_accept() {
        use Format::*;
        assert_eq!(Format::negotiate(None), Prometheus);
        assert_eq!(Format::negotiate(Some("text/plain")), Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Prometheus);
        // What Prometheus 2.x/3.x sends.
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            )),
            OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0, text/plain")),
            Prometheus
        );
        assert_eq!(
            Format::negotiate(Some("Application/OpenMetrics-Text")),
            OpenMetrics
        );
    }

    #[test]
    fn both_formats_carry_every_family() {
        let m = Metrics::new();
        m.cert_not_after.set(1_800_000_000);
        m.latency.observe(0.0003);
        m.cert_reload("success");
        let om = m.encode_as(Format::OpenMetrics);
        let prom = m.encode_as(Format::Prometheus);
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(!prom.contains("# EOF"), "{prom}");
        assert!(
            prom.contains("# TYPE volguard_certificate_reloads_total counter\n"),
            "{prom}"
        );
        assert!(
            om.contains("# TYPE volguard_certificate_reloads counter\n"),
            "{om}"
        );
        for text in [&om, &prom] {
            assert!(
                text.contains("volguard_certificate_not_after_seconds 1800000000\n"),
                "{text}"
            );
            assert!(
                text.contains("volguard_admission_duration_seconds_bucket{le=\"0.0005\"} 1\n"),
                "{text}"
            );
            assert!(
                text.contains("volguard_admission_duration_seconds_bucket{le=\"0.00025\"} 0\n"),
                "{text}"
            );
        }
    }

    #[test]
    fn latency_buckets_resolve_sub_millisecond_to_a_second() {
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        // Latencies an order apart from 60 µs to 0.9 s land in buckets of their own.
        let bucket = |secs: f64| LATENCY_BUCKETS.iter().position(|b| secs <= *b);
        let seen: Vec<_> = [60e-6, 150e-6, 400e-6, 800e-6, 3e-3, 40e-3, 0.3, 0.9]
            .map(bucket)
            .into_iter()
            .collect();
        assert!(seen.iter().all(Option::is_some), "{seen:?}");
        let mut distinct = seen.clone();
        distinct.dedup();
        assert_eq!(distinct, seen);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_from_proc() {
        let rss = proc_status_bytes(
            &std::fs::read_to_string("/proc/self/status").unwrap(),
            "VmRSS",
        )
        .unwrap();
        assert!(rss > 1024 * 1024, "{rss}");
        let fds = proc_open_fds().unwrap();
        let f = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(proc_open_fds().unwrap(), fds + 1);
        drop(f);
        assert!(proc_max_fds().unwrap() >= fds);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = proc_start_time().unwrap();
        assert!(
            start <= now + 1.0 && start > now - 24.0 * 3600.0,
            "{start} {now}"
        );
        // CPU time grows while we burn CPU (bounded, so a broken reader fails, not hangs).
        let cpu = proc_cpu_seconds().unwrap();
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while proc_cpu_seconds().unwrap() <= cpu && spin.elapsed().as_secs() < 30 {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        assert!(proc_cpu_seconds().unwrap() > cpu, "CPU time did not grow");
    }
}
