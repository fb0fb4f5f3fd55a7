//! What the hub shows about itself on `GET /metrics`, in the OpenMetrics text format that
//! Prometheus scrapes.
//!
//! One [`Metrics`] per running hub, held by the [`crate::state::Hub`] and handed to the
//! delivery writer and the registry when they start. It is not a process-wide static:
//! tests run several hubs in one process, and each must count only its own deliveries.
//!
//! Everything here is cheap to update from a hot path (atomic counters, a short lock per
//! histogram observation). What is expensive to keep live — the backlog depth and the age
//! of its oldest delivery — is read from the store when scraped (see [`BacklogSnapshot`]).

use std::{
    fmt,
    sync::atomic::AtomicU64,
    time::{Duration, Instant},
};

use prometheus_client::{
    collector::Collector,
    encoding::{
        text::{encode_eof, encode_registry},
        DescriptorEncoder, EncodeMetric,
    },
    metrics::{
        counter::ConstCounter,
        counter::Counter,
        family::Family,
        gauge::ConstGauge,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
        info::Info,
    },
    registry::{Registry, Unit},
};

use crate::domain::{BacklogSnapshot, FailReason, IngestOutcome};

type ReasonLabel = [(&'static str, &'static str); 1];

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub struct Metrics {
    registry: Registry,
    /// The process's own, named as every Prometheus client names them (`process_…`),
    /// without the hub's prefix.
    process: Registry,
    /// Committed and queued for an agent (202).
    pub ingested: Counter,
    /// Refused by signature verification, recorded as `rejected`.
    pub rejected: Counter,
    /// Refused by signature verification past the rate at which they are recorded.
    pub rejected_unrecorded: Counter,
    /// Seen before on the same webhook, recorded as `duplicate`.
    pub duplicates: Counter,
    /// Refused with 503 because the agent's backlog was at its cap.
    pub backlog_full: Counter,
    /// Delivery frames handed to an agent's socket, resends included.
    pub delivered: Counter,
    /// Acks that moved a pending delivery to `acked`, counted once committed.
    pub acked: Counter,
    /// Pending deliveries that outlived the retention window.
    pub expired: Counter,
    /// Deliveries given up on, by why: nacked, max_attempts, discarded.
    failed: Family<ReasonLabel, Counter>,
    /// How many times each acked delivery was handed out before its ack.
    pub attempts_per_ack: Histogram,
    /// Operations in one group commit: how well the writer amortises its fsyncs.
    pub commit_batch_size: Histogram,
    pub commit_seconds: Histogram,
    /// From the start of an ingest request to its 202.
    pub ingest_seconds: Histogram,
    /// From the stored receipt time (millisecond resolution) to the frame being handed to
    /// the socket; includes the time a delivery waited while its agent was offline.
    pub post_to_agent_seconds: Histogram,
    pub connected_agents: Gauge,
    /// The process's count (see [`crate::logging::MALFORMED`]), not this hub's: the log
    /// it stands in for is the process's too.
    malformed_requests: Counter,
    backlog_depth: Gauge,
    oldest_queued_age_seconds: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        // 100 µs to about 3.3 s: a commit is one fsync, a request a commit plus parsing.
        let fast = || Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let mut m = Self {
            registry: Registry::with_prefix("hookhub"),
            process: Registry::default(),
            ingested: Counter::default(),
            rejected: Counter::default(),
            rejected_unrecorded: Counter::default(),
            duplicates: Counter::default(),
            backlog_full: Counter::default(),
            delivered: Counter::default(),
            acked: Counter::default(),
            expired: Counter::default(),
            failed: Family::default(),
            attempts_per_ack: Histogram::new([1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0]),
            commit_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            commit_seconds: fast(),
            ingest_seconds: fast(),
            // 1 ms (the resolution of receipt times) to about 70 minutes of waiting.
            post_to_agent_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 23)),
            connected_agents: Gauge::default(),
            malformed_requests: crate::logging::MALFORMED.total.clone(),
            backlog_depth: Gauge::default(),
            oldest_queued_age_seconds: Gauge::default(),
        };
        m.process.register_collector(Box::new(ProcessCollector));
        let r = &mut m.registry;
        r.register(
            "build",
            "The running build: its version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        r.register(
            "deliveries_ingested",
            "Deliveries committed and queued for their agent",
            m.ingested.clone(),
        );
        r.register(
            "deliveries_rejected",
            "Requests that failed signature verification",
            m.rejected.clone(),
        );
        r.register(
            "deliveries_rejected_unrecorded",
            "Requests that failed signature verification past the rate at which they are recorded",
            m.rejected_unrecorded.clone(),
        );
        r.register(
            "deliveries_duplicate",
            "Requests recorded as duplicates of an earlier delivery",
            m.duplicates.clone(),
        );
        r.register(
            "deliveries_backlog_full",
            "Requests refused because the agent's backlog was full",
            m.backlog_full.clone(),
        );
        r.register(
            "deliveries_delivered",
            "Delivery frames handed to agent sockets, resends included",
            m.delivered.clone(),
        );
        r.register(
            "deliveries_acked",
            "Deliveries acked by their agent",
            m.acked.clone(),
        );
        r.register(
            "deliveries_expired",
            "Deliveries that expired unacked",
            m.expired.clone(),
        );
        r.register(
            "deliveries_failed",
            "Deliveries given up on (status failed), by reason: nacked without requeue, out of attempts (max_attempts), or discarded",
            m.failed.clone(),
        );
        r.register(
            "delivery_attempts_per_ack",
            "Times an acked delivery was handed out, the acked attempt included",
            m.attempts_per_ack.clone(),
        );
        r.register(
            "commit_batch_size",
            "Operations committed in one transaction by the delivery writer",
            m.commit_batch_size.clone(),
        );
        r.register_with_unit(
            "commit_duration",
            "Time to apply and commit one batch of the delivery writer",
            Unit::Seconds,
            m.commit_seconds.clone(),
        );
        r.register_with_unit(
            "ingest_duration",
            "Time from an ingest request to its 202, once durable",
            Unit::Seconds,
            m.ingest_seconds.clone(),
        );
        r.register_with_unit(
            "post_to_agent",
            "Time from receipt (millisecond resolution) to the frame handed to the agent socket",
            Unit::Seconds,
            m.post_to_agent_seconds.clone(),
        );
        r.register(
            "connected_agents",
            "Agents with a live socket",
            m.connected_agents.clone(),
        );
        r.register(
            "malformed_requests",
            "HTTP connections given up on for what the peer sent or did (bad requests, \
             cut-off ones), logged only in summary",
            m.malformed_requests.clone(),
        );
        r.register(
            "backlog_depth",
            "Deliveries queued or sent and not yet acked, all agents",
            m.backlog_depth.clone(),
        );
        r.register_with_unit(
            "oldest_queued_age",
            "Age of the oldest delivery not yet acked (0 when none)",
            Unit::Seconds,
            m.oldest_queued_age_seconds.clone(),
        );
        // Each reason from the start, at 0, so that a rate over it exists before the first.
        for reason in [
            FailReason::Nacked,
            FailReason::MaxAttempts(0),
            FailReason::Discarded,
        ] {
            m.failed(reason);
        }
        m
    }

    /// Records one ingest answered 202, timed from `started`.
    pub fn observe_ingest(&self, started: Instant) {
        self.ingest_seconds.observe(started.elapsed().as_secs_f64());
    }

    /// The counter for a committed ingest's outcome.
    pub fn ingest_outcome(&self, outcome: &IngestOutcome) -> &Counter {
        match outcome {
            IngestOutcome::Queued(_) => &self.ingested,
            IngestOutcome::Duplicate(_) => &self.duplicates,
            IngestOutcome::BacklogFull => &self.backlog_full,
        }
    }

    /// Records one committed batch of the delivery writer.
    /// The counter of deliveries given up on for `reason`.
    pub fn failed(&self, reason: FailReason) -> Counter {
        self.failed
            .get_or_create(&[("reason", reason.label())])
            .clone()
    }

    pub fn observe_commit(&self, ops: usize, took: Duration) {
        self.commit_batch_size.observe(ops as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }

    /// Records a delivery frame handed to a socket; `received_at` and `now` in ms.
    pub fn observe_delivered(&self, received_at: i64, now: i64) {
        self.delivered.inc();
        let waited_ms = now.saturating_sub(received_at).max(0);
        self.post_to_agent_seconds
            .observe(waited_ms as f64 / 1000.0);
    }

    /// The exposition, with the backlog gauges set from `backlog` taken at `now_ms`.
    pub fn render(&self, backlog: BacklogSnapshot, now_ms: i64) -> Result<String, fmt::Error> {
        self.backlog_depth.set(backlog.depth);
        let age_ms = backlog
            .oldest_received_at
            .map_or(0, |at| now_ms.saturating_sub(at).max(0));
        self.oldest_queued_age_seconds.set(age_ms as f64 / 1000.0);
        let mut out = String::with_capacity(8 * 1024);
        encode_registry(&mut out, &self.registry)?;
        encode_registry(&mut out, &self.process)?;
        encode_eof(&mut out)?;
        Ok(out)
    }
}

/// The process's CPU time, memory, descriptors and start time, read from `/proc` at each
/// scrape (Linux; elsewhere nothing is reported), under the names the Prometheus clients
/// of other languages use, so that existing dashboards and alerts apply.
#[derive(Debug)]
struct ProcessCollector;

/// What `/proc/self` tells about the process.
#[derive(Debug, Default, PartialEq)]
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    start_time_seconds: f64,
    open_fds: i64,
    max_fds: i64,
}

impl ProcessStats {
    #[cfg(target_os = "linux")]
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let mut stats = Self::parse(&stat, &status, &boot)?;
        stats.open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as i64;
        stats.max_fds = crate::admission::open_file_limit()
            .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        Some(stats)
    }

    #[cfg(not(target_os = "linux"))]
    fn read() -> Option<Self> {
        None
    }

    /// From `/proc/self/stat`, `/proc/self/status` and `/proc/stat`.
    fn parse(stat: &str, status: &str, proc_stat: &str) -> Option<Self> {
        // The times in `stat` are in USER_HZ, which Linux fixes at 100 for what it shows
        // user space, whatever the kernel's own tick.
        const TICKS: f64 = 100.0;
        // The command name, in parentheses, may hold spaces: fields are counted after it.
        let after_name = stat.get(stat.rfind(')')? + 2..)?;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // proc(5) numbers the fields from 1, pid first: the state, field 3, is fields[0].
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        let kib = |key: &str| -> Option<i64> {
            let line = status.lines().find_map(|l| l.strip_prefix(key))?;
            line.split_whitespace()
                .next()?
                .parse::<i64>()
                .ok()
                .map(|k| k * 1024)
        };
        let boot_time: f64 = proc_stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        Some(Self {
            cpu_seconds: (field(14)? + field(15)?) / TICKS,
            start_time_seconds: boot_time + field(22)? / TICKS,
            virtual_bytes: kib("VmSize:")?,
            resident_bytes: kib("VmRSS:")?,
            ..Self::default()
        })
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(stats) = ProcessStats::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(stats.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "User and system CPU time spent",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        let gauges: [(&str, &str, Option<&Unit>, ConstGauge<f64>); 5] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size",
                None,
                ConstGauge::new(stats.resident_bytes as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size",
                None,
                ConstGauge::new(stats.virtual_bytes as f64),
            ),
            (
                "process_start_time",
                "Start time of the process since the Unix epoch",
                Some(&Unit::Seconds),
                ConstGauge::new(stats.start_time_seconds),
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                None,
                ConstGauge::new(stats.open_fds as f64),
            ),
            (
                "process_max_fds",
                "The limit of open file descriptors",
                None,
                ConstGauge::new(stats.max_fds as f64),
            ),
        ];
        for (name, help, unit, gauge) in gauges {
            gauge.encode(encoder.encode_descriptor(name, help, unit, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_backlog_gauges() {
        let m = Metrics::new();
        m.ingested.inc_by(3);
        m.observe_commit(4, Duration::from_micros(1500));
        m.observe_delivered(1_000, 1_250);
        let text = m
            .render(
                BacklogSnapshot {
                    depth: 7,
                    oldest_received_at: Some(10_000),
                },
                12_500,
            )
            .unwrap();
        assert!(
            text.contains("hookhub_deliveries_ingested_total 3\n"),
            "{text}"
        );
        assert!(
            text.contains("hookhub_deliveries_delivered_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("hookhub_commit_batch_size_count 1\n"),
            "{text}"
        );
        assert!(
            text.contains("hookhub_commit_batch_size_sum 4.0\n"),
            "{text}"
        );
        assert!(
            text.contains("hookhub_post_to_agent_seconds_sum 0.25\n"),
            "{text}"
        );
        assert!(text.contains("hookhub_backlog_depth 7\n"), "{text}");
        assert!(
            text.contains("hookhub_oldest_queued_age_seconds 2.5\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        assert!(
            text.contains(&format!(
                "hookhub_build_info{{version=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        #[cfg(target_os = "linux")]
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(name), "{name} missing: {text}");
        }
    }

    #[test]
    fn process_stats_are_read_from_procs_fields() {
        // A command name with spaces and a parenthesis, as a process may call itself.
        let stat = "4242 (hook hub) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 9 0 1000 2000000 300 18446744073709551615";
        let status = "Name:\thookhub\nVmSize:\t  2048 kB\nVmRSS:\t   300 kB\n";
        let proc_stat = "cpu  1 2 3\nbtime 1700000000\nprocesses 10\n";
        let stats = ProcessStats::parse(stat, status, proc_stat).unwrap();
        assert_eq!(stats.cpu_seconds, 3.0);
        assert_eq!(stats.start_time_seconds, 1_700_000_010.0);
        assert_eq!(stats.virtual_bytes, 2048 * 1024);
        assert_eq!(stats.resident_bytes, 300 * 1024);
        assert!(ProcessStats::parse("garbage", status, proc_stat).is_none());
        assert!(ProcessStats::parse(stat, "", proc_stat).is_none());
    }
}
