//! The process's logs: to stderr, as text or as JSON lines (`--log-format`), filtered by
//! `RUST_LOG` (default `info,sqlx=warn`).
//!
//! One kind of line is kept out whatever the filter says. actix-http's HTTP/1 dispatcher
//! writes an ERROR for every connection it gives up on, which, with the bodies this hub
//! sends, is always for what the peer sent or did (a request that does not parse, a head
//! too large, a connection broken off): anyone who can reach the port could fill the
//! error log. Those events are counted instead ([`MALFORMED`], served as
//! `hookhub_malformed_requests_total`), and `serve` sums them up in one WARN line at most
//! every [`SUMMARY_EVERY`] (see [`report_malformed`]), with the last one's reason: never
//! what a peer sent, only what actix-http made of it.
//!
//! The MCP SDK's own DEBUG and TRACE lines are kept out too: they print whole requests
//! and results, which carry signing and provider secrets, and secrets never reach a log,
//! whatever `RUST_LOG` says.

use std::{
    fmt::{self, Write as _},
    sync::{LazyLock, Mutex},
    time::{Duration, Instant},
};

use prometheus_client::metrics::counter::Counter;
use tokio_util::sync::CancellationToken;
use tracing::{
    field::{Field, Visit},
    level_filters::LevelFilter,
    Event, Level, Metadata, Subscriber,
};
use tracing_subscriber::{
    filter::{filter_fn, EnvFilter, FilterExt},
    layer::{Context, SubscriberExt},
    util::SubscriberInitExt,
    Layer,
};

/// Where actix-http reports, once per connection, why it gave up on it.
const DISPATCHER: &str = "actix_http::h1::dispatcher";

/// The least time between two summary lines.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);
/// How often the count is looked at: the first of a quiet spell is reported this soon.
const POLL: Duration = Duration::from_secs(1);

/// Connections actix-http gave up on, as its log tells them.
pub struct MalformedRequests {
    /// Process-wide, as the log it stands in for is; each hub's metrics serve it.
    pub total: Counter,
    /// The reason of the last one counted, for the summary line.
    last_reason: Mutex<String>,
}

pub static MALFORMED: LazyLock<MalformedRequests> = LazyLock::new(|| MalformedRequests {
    total: Counter::default(),
    last_reason: Mutex::new(String::new()),
});

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For a person: one line of text per event.
    #[default]
    Text,
    /// For a log system: one JSON object per line, its fields at the top level.
    Json,
}

/// Sets up the process's logging. Call once, before anything logs.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // The hint keeps the combined filter's: without one it would be "any level".
    let kept = filter_fn(|meta| !is_peer_error(meta) && !is_sdk_detail(meta))
        .with_max_level_hint(LevelFilter::TRACE);
    // Logs go to stderr; stdout carries what commands print (JSON, the first token).
    let output = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // Colour codes only for a person at a terminal, not in a log file.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(filter.and(kept));
    let counter = CountMalformed
        .with_filter(filter_fn(is_peer_error).with_max_level_hint(LevelFilter::ERROR));
    tracing_subscriber::registry()
        .with(output)
        .with(counter)
        .init();
}

/// A line of the MCP SDK (rmcp) below INFO: one that may print a message whole.
fn is_sdk_detail(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with("rmcp") && *meta.level() > Level::INFO
}

fn is_peer_error(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::ERROR && meta.target() == DISPATCHER
}

/// Counts the dispatcher's errors, and keeps the last one's reason.
struct CountMalformed;

impl<S: Subscriber> Layer<S> for CountMalformed {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        MALFORMED.total.inc();
        // Under a flood, some other worker is writing one as good: skip rather than wait.
        if let Ok(mut last) = MALFORMED.last_reason.try_lock() {
            last.clear();
            event.record(&mut MessageInto(&mut last));
        }
    }
}

struct MessageInto<'a>(&'a mut String);

impl Visit for MessageInto<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

/// A summary line's numbers: how many, over how long.
#[derive(Debug, PartialEq, Eq)]
struct Report {
    count: u64,
    over: Duration,
}

/// When a summary line is due, from the running total looked at every [`POLL`].
#[derive(Debug)]
struct Summary {
    reported: u64,
    last_report: Option<Instant>,
    /// The poll before the first unreported request was seen: it came after that.
    unreported_since: Option<Instant>,
    last_poll: Instant,
}

impl Summary {
    fn new(now: Instant) -> Self {
        Self {
            reported: 0,
            last_report: None,
            unreported_since: None,
            last_poll: now,
        }
    }

    /// At a poll: what came since the last report, unless that was less than
    /// [`SUMMARY_EVERY`] ago.
    fn poll(&mut self, total: u64, now: Instant) -> Option<Report> {
        let previous_poll = std::mem::replace(&mut self.last_poll, now);
        if total <= self.reported {
            return None;
        }
        let since = *self.unreported_since.get_or_insert(previous_poll);
        if self
            .last_report
            .is_some_and(|at| now.duration_since(at) < SUMMARY_EVERY)
        {
            return None;
        }
        Some(self.report(total, since, now))
    }

    /// At shutdown: whatever was not reported yet.
    fn flush(&mut self, total: u64, now: Instant) -> Option<Report> {
        if total <= self.reported {
            return None;
        }
        let since = self.unreported_since.unwrap_or(self.last_poll);
        Some(self.report(total, since, now))
    }

    fn report(&mut self, total: u64, since: Instant, now: Instant) -> Report {
        let report = Report {
            count: total - self.reported,
            over: now.duration_since(since),
        };
        self.reported = total;
        self.last_report = Some(now);
        self.unreported_since = None;
        report
    }
}

/// Writes the summary lines until `stop`, then one for what is left.
pub async fn report_malformed(stop: CancellationToken) {
    let mut summary = Summary::new(Instant::now());
    let mut every = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Some(report) = summary.poll(MALFORMED.total.get(), Instant::now()) {
                    log_report(&report);
                }
            }
            () = stop.cancelled() => {
                if let Some(report) = summary.flush(MALFORMED.total.get(), Instant::now()) {
                    log_report(&report);
                }
                return;
            }
        }
    }
}

fn log_report(report: &Report) {
    let last = MALFORMED
        .last_reason
        .lock()
        .map(|last| {
            last.strip_prefix("stream error: ")
                .unwrap_or(&last)
                .to_owned()
        })
        .unwrap_or_default();
    // Whole seconds, rounded up: "in the last 0 s" would read as a mistake.
    let seconds = (report.over.as_secs() + u64::from(report.over.subsec_nanos() > 0)).max(1);
    tracing::warn!(
        last = %last,
        "{} malformed HTTP requests in the last {seconds} s (summed up here, one line at most every {} s)",
        report.count,
        SUMMARY_EVERY.as_secs(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mcp_sdk_never_logs_below_info_whatever_the_filter() {
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .with_filter(EnvFilter::new("trace").and(filter_fn(|m| !is_sdk_detail(m))));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            assert!(!tracing::enabled!(target: "rmcp::service", Level::DEBUG));
            assert!(!tracing::enabled!(target: "rmcp", Level::TRACE));
            assert!(tracing::enabled!(target: "rmcp::service", Level::INFO));
            assert!(tracing::enabled!(target: "hookhub::mcp", Level::DEBUG));
        });
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn the_first_is_reported_at_once_then_at_most_every_ten_seconds() {
        let t0 = Instant::now();
        let mut summary = Summary::new(t0);
        assert_eq!(summary.poll(0, t0 + S), None);
        // Seen at 2 s, so it came after the poll at 1 s.
        assert_eq!(
            summary.poll(5, t0 + 2 * S),
            Some(Report { count: 5, over: S })
        );
        // More come at once, but the last line is not 10 s old.
        for n in 3..12 {
            assert_eq!(summary.poll(50, t0 + n * S), None);
        }
        assert_eq!(
            summary.poll(60, t0 + 12 * S),
            Some(Report {
                count: 55,
                over: 10 * S
            })
        );
        // Quiet, then one more: reported at the next poll, over the second it came in.
        assert_eq!(summary.poll(60, t0 + 40 * S), None);
        assert_eq!(
            summary.poll(61, t0 + 41 * S),
            Some(Report { count: 1, over: S })
        );
    }

    #[test]
    fn shutdown_reports_what_is_left_at_once() {
        let t0 = Instant::now();
        let mut summary = Summary::new(t0);
        assert!(summary.poll(1, t0 + S).is_some());
        assert_eq!(summary.poll(7, t0 + 2 * S), None);
        assert_eq!(
            summary.flush(9, t0 + 2 * S + S / 2),
            Some(Report {
                count: 8,
                over: 3 * S / 2
            })
        );
        assert_eq!(summary.flush(9, t0 + 3 * S), None);
    }
}
