//! The scenarios, and the steps they share: connecting agents, posting, waiting for every
//! accepted delivery to arrive and for every ack to be committed.

pub mod backlog;
pub mod connections;
pub mod ingest;
pub mod latency;
pub mod mcp;
pub mod one_agent;

use std::{
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use tokio::{
    sync::{watch, Semaphore},
    task::JoinHandle,
};

use crate::{
    agent::{self, AgentLedger, Progress},
    hub::{self, Hub, Scrape},
    post::{self, Plan, PosterResult},
    Error,
};

/// Settings every scenario shares.
pub struct Common {
    /// Longest wait for deliveries to arrive and acks to be committed.
    pub drain: Duration,
}

/// Agents with open sockets, reading and acking until told to stop.
pub struct Online {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<AgentLedger>>,
    pub progress: Arc<Progress>,
    pub epoch: Instant,
}

/// Opens one socket per `(agent index, token)`, `concurrency` handshakes at a time.
pub async fn connect_agents(
    hub: &Hub,
    agents: Vec<(usize, String)>,
    small_buffers: bool,
    concurrency: usize,
) -> Result<Online, Error> {
    let (stop, stop_rx) = watch::channel(false);
    let progress = Arc::new(Progress::default());
    let epoch = Instant::now();
    let sem = Arc::new(Semaphore::new(concurrency));
    let url = Arc::new(hub.ws_url());
    let addr: SocketAddr = hub.addr;
    let mut connecting = Vec::with_capacity(agents.len());
    for (index, token) in agents {
        let (sem, url, progress, stop_rx) =
            (sem.clone(), url.clone(), progress.clone(), stop_rx.clone());
        connecting.push(tokio::spawn(async move {
            let socket = {
                let _permit = sem.acquire().await?;
                agent::connect(addr, &url, &token, small_buffers).await?
            };
            Ok::<_, Error>(tokio::spawn(agent::run(
                index, socket, epoch, progress, stop_rx,
            )))
        }));
    }
    let mut tasks = Vec::with_capacity(connecting.len());
    let mut first_error = None;
    for c in connecting {
        match c.await {
            Ok(Ok(task)) => tasks.push(task),
            Ok(Err(e)) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let online = Online {
        stop,
        tasks,
        progress,
        epoch,
    };
    if let Some(e) = first_error {
        let opened = online.tasks.len();
        online.finish().await;
        return Err(format!("an agent socket did not open ({opened} did): {e}").into());
    }
    Ok(online)
}

impl Online {
    /// Closes every socket and returns the ledgers.
    pub async fn finish(self) -> Vec<AgentLedger> {
        let _ = self.stop.send(true);
        let mut ledgers = Vec::with_capacity(self.tasks.len());
        for t in self.tasks {
            if let Ok(l) = t.await {
                ledgers.push(l);
            }
        }
        ledgers
    }

    /// Waits until `n` deliveries have been received for the first time.
    pub async fn wait_received(&self, n: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.progress.first_receipts.load(Ordering::Relaxed) < n {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    pub async fn wait_connected(&self, n: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.progress.connected.load(Ordering::Relaxed) < n {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

/// Runs every poster of `plan` to the end; also how long posting took.
pub async fn post_all(mut plan: Plan) -> Result<(Vec<PosterResult>, Duration), Error> {
    plan.run_id = agent::unix_nanos();
    let plan = Arc::new(plan);
    // A short head start, so that every poster is ready when the schedule begins.
    let start = Instant::now() + Duration::from_millis(20);
    let tasks: Vec<_> = (0..plan.posters)
        .map(|p| tokio::spawn(post::run(plan.clone(), p, start)))
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for t in tasks {
        results.push(t.await?);
    }
    Ok((results, Instant::now().saturating_duration_since(start)))
}

/// Waits until the hub has committed `n` more acks than `before` shows.
pub async fn wait_acks_committed(
    hub: &Hub,
    before: &Scrape,
    n: u64,
    within: Duration,
) -> Result<bool, Error> {
    let target = before.get("hookhub_deliveries_acked_total") + n as f64;
    let deadline = Instant::now() + within;
    loop {
        let now = hub::scrape(hub).await?;
        if now.get("hookhub_deliveries_acked_total") >= target {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the hub's own metrics say happened between two scrapes.
pub fn metrics_delta(before: &Scrape, after: &Scrape) -> Value {
    let d = |name: &str| after.get(name) - before.get(name);
    let mean = |sum: &str, count: &str| {
        let c = d(count);
        (c > 0.0).then(|| d(sum) / c)
    };
    json!({
        "ingested": d("hookhub_deliveries_ingested_total"),
        "delivered": d("hookhub_deliveries_delivered_total"),
        "acked": d("hookhub_deliveries_acked_total"),
        "duplicate": d("hookhub_deliveries_duplicate_total"),
        "rejected": d("hookhub_deliveries_rejected_total"),
        "commits": d("hookhub_commit_batch_size_count"),
        "mean_commit_batch": mean("hookhub_commit_batch_size_sum", "hookhub_commit_batch_size_count"),
        "mean_commit_ms": mean("hookhub_commit_duration_seconds_sum", "hookhub_commit_duration_seconds_count").map(|s| s * 1000.0),
        "mean_ingest_ms": mean("hookhub_ingest_duration_seconds_sum", "hookhub_ingest_duration_seconds_count").map(|s| s * 1000.0),
        "mean_post_to_agent_ms": mean("hookhub_post_to_agent_seconds_sum", "hookhub_post_to_agent_seconds_count").map(|s| s * 1000.0),
        "connected_agents": after.get("hookhub_connected_agents"),
        "backlog_depth": after.get("hookhub_backlog_depth"),
    })
}

/// Hub CPU seconds between two readings, per 1,000 deliveries.
/// Bytes the hub wrote to storage per delivery between two readings of its
/// `/proc/<pid>/io`: with CPU per delivery, the figure the machine's speed moves least.
pub fn bytes_per_delivery(before: Option<u64>, after: Option<u64>, deliveries: u64) -> Option<f64> {
    let (b, a) = (before?, after?);
    (deliveries > 0).then(|| a.saturating_sub(b) as f64 / deliveries as f64)
}

pub fn cpu_per_1000(
    before: Option<Duration>,
    after: Option<Duration>,
    deliveries: u64,
) -> Option<f64> {
    let (b, a) = (before?, after?);
    (deliveries > 0).then(|| (a.saturating_sub(b)).as_secs_f64() * 1000.0 / deliveries as f64)
}
