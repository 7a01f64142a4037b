//! Prometheus metrics (prometheus-client), shared by the webhook and the policy sources.

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
pub struct ResultLabels {
    pub result: &'static str,
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
    pub latency: Histogram,
    pub bad_requests: Family<ReasonLabels, Counter>,
    pub policy_reloads: Family<ResultLabels, Counter>,
    pub cert_reloads: Family<ResultLabels, Counter>,
    pub policy_generation: Gauge,
    pub policy_info: Family<PolicyLabels, Gauge>,
    /// Requests refused or dropped to protect the server, by reason.
    pub shed: Family<ReasonLabels, Counter>,
    /// Evaluations waiting for a worker (set when /metrics is read).
    pub evaluations_queued: Gauge,
    /// Bytes of request and response bodies held (set when /metrics is read).
    pub body_memory_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("volguard");
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
        // 25 µs .. ~0.8 s
        let latency = Histogram::new((0..16).map(|i| 25e-6 * 2f64.powi(i)));
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
        let body_memory_bytes = Gauge::default();
        registry.register(
            "body_memory_bytes",
            "Bytes of request and response bodies held (bounded by --body-memory-budget-bytes)",
            body_memory_bytes.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "Build information (value 1)", build);
        Metrics {
            registry,
            requests,
            violations,
            latency,
            bad_requests,
            policy_reloads,
            cert_reloads,
            policy_generation,
            policy_info,
            shed,
            evaluations_queued,
            body_memory_bytes,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
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
