//! The metrics read at scrape time: the standard `process_*` family from `/proc/self`, and
//! the log sink's dropped-lines count.

/// `process_*` metrics as the Prometheus client libraries export them, read from `/proc/self`
/// on each scrape (nothing is exported where `/proc` is missing). CPU time is in clock ticks
/// of 100 Hz (`USER_HZ`), the value Linux exposes to user space on every architecture
/// (prometheus/procfs assumes the same).
#[derive(Debug)]
pub(super) struct ProcessCollector {
    /// Start time, Unix seconds (from /proc, else the time the collector was made).
    start_time: f64,
}

const USER_HZ: f64 = 100.0;

impl ProcessCollector {
    pub(super) fn new() -> Self {
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
pub(super) fn proc_start_time() -> Option<f64> {
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
pub(super) fn proc_cpu_seconds() -> Option<f64> {
    let fields = proc_stat_fields()?;
    let utime: f64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: f64 = fields.get(15 - 3)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// A `kB` line of /proc/self/status (VmRSS, VmSize), in bytes.
pub(super) fn proc_status_bytes(status: &str, key: &str) -> Option<i64> {
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
pub(super) fn proc_max_fds() -> Option<i64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub(super) fn proc_open_fds() -> Option<i64> {
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
/// ([`super::super::log::DROPPED_LINES`]), read at scrape time like the process metrics.
#[derive(Debug)]
pub(super) struct LogDropsCollector;

impl prometheus_client::collector::Collector for LogDropsCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::counter::ConstCounter;
        let dropped = super::super::log::DROPPED_LINES.load(std::sync::atomic::Ordering::Relaxed);
        encode_const(
            &mut encoder,
            "log_lines_dropped",
            "Log lines dropped because the log output did not keep up (its buffer was full)",
            &ConstCounter::new(dropped),
        )
    }
}
