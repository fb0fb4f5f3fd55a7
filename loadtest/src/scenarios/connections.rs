//! `connections`: as many idle agent sockets as the file limits allow, held open with
//! the hub's heartbeats on; the hub's memory per socket and its CPU while idle.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{connect_agents, metrics_delta, Common};
use crate::{
    hub::{self, create_agents, Hub},
    report::{Figure, Phase, Target},
    sys,
    verdict::Verdict,
    Error,
};

pub struct Args {
    /// `None`: as many as the limits allow.
    pub connections: Option<u64>,
    pub idle: Duration,
    pub connect_concurrency: usize,
    /// Descriptors kept free in each process for everything but agent sockets.
    pub reserve: u64,
}

/// The most sockets both processes can hold: each agent socket is one descriptor in
/// this process and one in the hub, and one local port.
pub fn max_connections(own_soft: u64, hub_soft: Option<u64>, reserve: u64) -> u64 {
    let mut max = own_soft;
    if let Some(h) = hub_soft {
        max = max.min(h);
    }
    if let Some(ports) = sys::ephemeral_ports() {
        max = max.min(ports);
    }
    max.saturating_sub(reserve)
}

pub async fn run(
    hub: &mut Hub,
    common: &Common,
    args: Args,
    own_soft: u64,
) -> Result<Vec<Phase>, Error> {
    let hub_limits = hub.nofile();
    let max = max_connections(own_soft, hub_limits.map(|l| l.0), args.reserve);
    let count = match args.connections {
        Some(c) if c > max => {
            return Err(format!(
                "--connections {c} is more than the file limits allow ({max}: this process {own_soft}, the hub {}, less {} reserved)",
                hub_limits.map_or("unknown".to_owned(), |l| l.0.to_string()),
                args.reserve
            )
            .into())
        }
        Some(c) => c,
        None => max,
    };
    if count == 0 {
        return Err("the file limits leave room for no agent socket".into());
    }
    let agents = create_agents(hub, count as usize, false, 8).await?;
    let tokens: Vec<(usize, String)> = agents
        .into_iter()
        .enumerate()
        .map(|(i, a)| (i, a.token))
        .collect();

    let rss0 = hub.rss();
    let connect_start = Instant::now();
    let online = connect_agents(hub, tokens, true, args.connect_concurrency).await?;
    let connected = online.wait_connected(count, common.drain).await;
    let connect_time = connect_start.elapsed();
    // Let the hub finish the work each connect started (registering, last-seen writes).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = hub.rss();
    let before = hub::scrape(hub).await?;
    let (cpu0, t0) = (hub.cpu_time(), Instant::now());
    tokio::time::sleep(args.idle).await;
    let (cpu1, idle) = (hub.cpu_time(), t0.elapsed());
    let after = hub::scrape(hub).await?;
    let still = online
        .progress
        .connected
        .load(std::sync::atomic::Ordering::Relaxed);
    let ledgers = online.finish().await;

    let mut verdict = Verdict {
        acks_committed: true,
        ..Verdict::default()
    };
    if !connected {
        verdict
            .problems
            .push(format!("not every socket opened within {:?}", common.drain));
    }
    let gauge = after.get("hookhub_connected_agents") as u64;
    if gauge != count {
        verdict.problems.push(format!(
            "the hub counts {gauge} connected agents, not {count}"
        ));
    }
    if still < count {
        verdict
            .problems
            .push(format!("{} sockets ended while idle", count - still));
    }
    for l in &ledgers {
        if let Some(f) = &l.failure {
            verdict.agent_errors += 1;
            if verdict.problems.len() < 10 {
                verdict.problems.push(format!("agent {}: {f}", l.agent));
            }
        }
        if l.unexpected_frames > 0 {
            verdict.agent_errors += 1;
        }
    }
    if let Some(exit) = hub.exited() {
        verdict.problems.push(exit);
    }
    let pings: u64 = ledgers.iter().map(|l| l.pings).sum();
    let per_conn = match (rss0, rss1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1024.0 / count as f64),
        _ => None,
    };
    let idle_cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64() / idle.as_secs_f64() * 100.0),
        _ => None,
    };
    let figures = vec![
        Figure::new("idle sockets held", Some(count as f64), "")
            .target(Target::AtLeast(max as f64)),
        Figure::new(
            "connect rate",
            Some(count as f64 / connect_time.as_secs_f64()),
            "/s",
        ),
        Figure::new("hub RSS per socket", per_conn, "KiB").target(Target::AtMost(20.0)),
        Figure::new("hub CPU while idle", idle_cpu, "% of a core"),
        Figure::new(
            "pings per socket while idle",
            Some(pings as f64 / count as f64),
            "",
        ),
    ];
    let mut hub_metrics = metrics_delta(&before, &after);
    hub_metrics["file_limit_hub"] = json!(hub_limits);
    hub_metrics["file_limit_loadtest"] = json!(own_soft);
    hub_metrics["rss_before_mib"] = json!(rss0.map(|r| r as f64 / 1048576.0));
    hub_metrics["rss_connected_mib"] = json!(rss1.map(|r| r as f64 / 1048576.0));
    hub_metrics["idle_seconds"] = json!(idle.as_secs_f64());
    Ok(vec![Phase {
        name: format!("{count} sockets"),
        figures,
        verdict,
        hub_metrics,
    }])
}
