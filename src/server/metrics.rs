//! Prometheus metrics (prometheus-client), shared by the webhook and the policy sources, plus
//! the standard `process_*` metrics read from `/proc/self` at scrape time. Served as
//! OpenMetrics or Prometheus text 0.0.4, whichever the scraper asks for.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub kind: &'static str,
    pub operation: &'static str,
    pub verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ViolationLabels {
    pub rule: &'static str,
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DowngradeLabels {
    pub kind: &'static str,
    pub origin: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MutationLabels {
    pub kind: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExecutorLabels {
    pub executor: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    pub hash: String,
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
}

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

/// The two text formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Prometheus,
}

impl Format {
    /// OpenMetrics when the `Accept` header lists `application/openmetrics-text` (with a
    /// non-zero q), otherwise Prometheus text 0.0.4, which every scraper understands.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let asks_openmetrics = accept.is_some_and(|a| {
            a.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or_default();
                let q_zero = parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !q_zero
            })
        });
        if asks_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
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
    pub fn new() -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector::new()));
        let registry = root.sub_registry_with_prefix("volguard");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "admission_requests",
            "Admission requests by kind, operation and verdict",
            requests.clone(),
        );
        let violations = Family::<ViolationLabels, Counter>::default();
        registry.register(
            "violations",
            "Violations reported, by rule and effective action",
            violations.clone(),
        );
        let controller_downgrades = Family::<DowngradeLabels, Counter>::default();
        registry.register(
            "controller_downgrades",
            "Objects admitted with warnings instead of denied because a trusted controller (origin=controller) or a node (origin=mirror) created them",
            controller_downgrades.clone(),
        );
        let mutations = Family::<MutationLabels, Counter>::default();
        registry.register(
            "mutations",
            "Requests to /mutate by kind and result: patched, unchanged, or why not considered",
            mutations.clone(),
        );
        let latency = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "admission_duration_seconds",
            "Time from request received to response ready, per admission request",
            latency.clone(),
        );
        let bad_requests = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "bad_requests",
            "Requests rejected before evaluation, by reason",
            bad_requests.clone(),
        );
        let policy_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy loads by result (success, invalid, error)",
            policy_reloads.clone(),
        );
        let cert_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "certificate_reloads",
            "TLS certificate loads by result",
            cert_reloads.clone(),
        );
        let policy_generation = Gauge::default();
        registry.register(
            "policy_generation",
            "Generation of the policy in force (1 = first load)",
            policy_generation.clone(),
        );
        let policy_info = Family::<PolicyLabels, Gauge>::default();
        registry.register(
            "policy_info",
            "The policy in force: hash and source (value 1)",
            policy_info.clone(),
        );
        let shed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "shed_requests",
            "Requests refused or dropped under load (queue_full, body_memory, client_gone, deadline)",
            shed.clone(),
        );
        let evaluations_queued = Gauge::default();
        registry.register(
            "evaluations_queued",
            "Evaluations waiting for a worker",
            evaluations_queued.clone(),
        );
        // One counter per place, fetched once: no label lookup per request.
        let evaluations = Family::<ExecutorLabels, Counter>::default();
        let evaluations_inline = evaluations
            .get_or_create(&ExecutorLabels { executor: "inline" })
            .clone();
        let evaluations_pool = evaluations
            .get_or_create(&ExecutorLabels { executor: "pool" })
            .clone();
        registry.register(
            "evaluations",
            "Evaluations by where they ran: inline (on the connection's thread, bodies up to --inline-evaluation-max-bytes) or pool",
            evaluations,
        );
        let body_memory_bytes = Gauge::default();
        registry.register(
            "body_memory_bytes",
            "Bytes of request and response bodies held (bounded by --body-memory-budget-bytes)",
            body_memory_bytes.clone(),
        );
        registry.register_collector(Box::new(LogDropsCollector));
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "Build information (value 1)", build);
        let cert_not_after = Gauge::default();
        registry.register(
            "certificate_not_after_seconds",
            "notAfter of the serving TLS certificate in use, in Unix seconds",
            cert_not_after.clone(),
        );
        Metrics {
            registry: root,
            requests,
            violations,
            controller_downgrades,
            mutations,
            latency,
            bad_requests,
            policy_reloads,
            cert_reloads,
            policy_generation,
            policy_info,
            cert_not_after,
            shed,
            evaluations_queued,
            evaluations_inline,
            evaluations_pool,
            body_memory_bytes,
        }
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
}

/// `process_*` metrics as the Prometheus client libraries export them, read from `/proc/self`
/// on each scrape (nothing is exported where `/proc` is missing). CPU time is in clock ticks
/// of 100 Hz (`USER_HZ`), the value Linux exposes to user space on every architecture
/// (prometheus/procfs assumes the same).
#[derive(Debug)]
struct ProcessCollector {
    /// Start time, Unix seconds (from /proc, else the time the collector was made).
    start_time: f64,
}

const USER_HZ: f64 = 100.0;

impl ProcessCollector {
    fn new() -> Self {
        let fallback = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        ProcessCollector {
            start_time: proc_start_time().unwrap_or(fallback),
        }
    }
}

/// The fields of `/proc/self/stat` after the command name: `[0]` is field 3 (state).
fn proc_stat_fields() -> Option<Vec<String>> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// starttime (field 22, ticks after boot) + btime of /proc/stat.
fn proc_start_time() -> Option<f64> {
    let fields = proc_stat_fields()?;
    let ticks: f64 = fields.get(22 - 3)?.parse().ok()?;
    let boot: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(boot + ticks / USER_HZ)
}

/// utime + stime (fields 14 and 15), in seconds.
fn proc_cpu_seconds() -> Option<f64> {
    let fields = proc_stat_fields()?;
    let utime: f64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: f64 = fields.get(15 - 3)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// A `kB` line of /proc/self/status (VmRSS, VmSize), in bytes.
fn proc_status_bytes(status: &str, key: &str) -> Option<i64> {
    let line = status.lines().find_map(|l| l.strip_prefix(key))?;
    let kb: i64 = line
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The soft limit on open files, from /proc/self/limits.
fn proc_max_fds() -> Option<i64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn proc_open_fds() -> Option<i64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as i64)
}

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        if let Some(cpu) = proc_cpu_seconds() {
            encode_const(
                &mut encoder,
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                &ConstCounter::new(cpu),
            )?;
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                proc_status_bytes(&status, "VmRSS"),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                proc_status_bytes(&status, "VmSize"),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                proc_open_fds(),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                proc_max_fds(),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                encode_const(&mut encoder, name, help, &ConstGauge::new(v))?;
            }
        }
        encode_const(
            &mut encoder,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            &ConstGauge::new(self.start_time),
        )
    }
}

/// One metric read at scrape time (a `ConstCounter` or `ConstGauge`), without labels.
fn encode_const(
    encoder: &mut prometheus_client::encoding::DescriptorEncoder,
    name: &str,
    help: &str,
    metric: &impl prometheus_client::encoding::EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// `volguard_log_lines_dropped_total`: the log sink's own count
/// ([`super::log::DROPPED_LINES`]), read at scrape time like the process metrics.
#[derive(Debug)]
struct LogDropsCollector;

impl prometheus_client::collector::Collector for LogDropsCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::counter::ConstCounter;
        let dropped = super::log::DROPPED_LINES.load(std::sync::atomic::Ordering::Relaxed);
        encode_const(
            &mut encoder,
            "log_lines_dropped",
            "Log lines dropped because the log output did not keep up (its buffer was full)",
            &ConstCounter::new(dropped),
        )
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
