//! `backlog`: deliveries queued while their agents are offline, then flushed. Times the
//! flush from the moment the agents start connecting to the last ack written, and watches
//! the hub's resident memory while it flushes.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{
    bytes_per_delivery, connect_agents, cpu_per_1000, ingest::setup, metrics_delta, post_all,
    wait_acks_committed, Common,
};
use crate::{
    hub::{self, Hub, RssSampler},
    post::Plan,
    report::{Figure, Phase, Target},
    verdict::judge,
    Error,
};

pub struct Args {
    pub agents: usize,
    pub per_agent: u64,
    pub posters: usize,
    pub body_bytes: usize,
    pub connect_concurrency: usize,
}

const MIB: f64 = 1024.0 * 1024.0;

pub async fn run(hub: &mut Hub, common: &Common, args: Args) -> Result<Vec<Phase>, Error> {
    let (webhooks, tokens) = setup(hub, args.agents).await?;
    let total = args.per_agent * args.agents as u64;
    let rss_empty = hub.rss();
    let before_queueing = hub::scrape(hub).await?;
    let io0 = hub.written_bytes();
    let plan = Plan {
        addr: hub.addr,
        webhooks,
        body_bytes: args.body_bytes,
        rate: None,
        posters: args.posters,
        run_id: 0,
        total,
    };
    let (posters, posting) = post_all(plan).await?;
    let accepted: u64 = posters.iter().map(|p| p.accepted.len() as u64).sum();

    let before = hub::scrape(hub).await?;
    let queued_depth = before.get("hookhub_backlog_depth");
    let rss_queued = hub.rss();
    let cpu0 = hub.cpu_time();
    let sampler = RssSampler::start(hub.pid);
    let flush_start = Instant::now();
    let n_agents = tokens.len() as u64;
    let online = connect_agents(hub, tokens, false, args.connect_concurrency).await?;
    let all_in = online.wait_received(accepted, common.drain).await;
    let last_ack = Duration::from_micros(
        online
            .progress
            .last_ack_us
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    // The flush ran from the first connect to the last ack the agents wrote.
    let flush = last_ack.saturating_sub(flush_start.saturating_duration_since(online.epoch));
    let acks = wait_acks_committed(hub, &before, accepted, common.drain).await?;
    let acks_done = flush_start.elapsed();
    let cpu1 = hub.cpu_time();
    let io1 = hub.written_bytes();
    let peak = sampler.peak().await;
    let still_connected = online
        .progress
        .connected
        .load(std::sync::atomic::Ordering::Relaxed);
    let ledgers = online.finish().await;
    let after = hub::scrape(hub).await?;

    let mut verdict = judge(&posters, &ledgers);
    verdict.drained("queued", all_in, acks, common.drain);
    if still_connected < n_agents {
        verdict.problems.push(format!(
            "{} agent sockets ended during the flush",
            n_agents - still_connected
        ));
    }
    if (queued_depth as u64) < accepted {
        verdict.problems.push(format!(
            "the hub's backlog showed {queued_depth} queued, not the {accepted} accepted"
        ));
    }
    if let Some(exit) = hub.exited() {
        verdict.problems.push(exit);
    }

    let growth = match (rss_queued, peak) {
        (Some(base), p) if p > 0 => Some(p.saturating_sub(base) as f64 / MIB),
        _ => None,
    };
    let flush_rate = (flush > Duration::ZERO).then(|| accepted as f64 / flush.as_secs_f64());
    let mut figures = vec![
        Figure::new("queued (offline)", Some(accepted as f64), "deliveries"),
        Figure::new(
            "queueing rate",
            Some(accepted as f64 / posting.as_secs_f64()),
            "/s",
        ),
        Figure::new("flush to last ack", Some(flush.as_secs_f64()), "s"),
        Figure::new("flush rate", flush_rate, "/s"),
        Figure::new(
            "flush to last ack committed",
            Some(acks_done.as_secs_f64()),
            "s",
        ),
        Figure::new(
            "hub RSS with the backlog queued",
            rss_queued.map(|r| r as f64 / MIB),
            "MiB",
        ),
        Figure::new("hub RSS growth during the flush", growth, "MiB"),
        Figure::new(
            "hub CPU per 1,000 flushed",
            cpu_per_1000(cpu0, cpu1, accepted),
            "s",
        ),
        // Ingest, send, ack and checkpoints: the whole life of each delivery.
        Figure::new(
            "hub bytes written per delivery, queued and flushed",
            bytes_per_delivery(io0, io1, accepted),
            "B",
        ),
    ];
    // Over the whole phase: queueing and flush.
    // The targets are for one agent's backlog; many agents each hold a window.
    if args.agents == 1 {
        figures[3].set_target(Target::AtLeast(50_000.0));
        // 50 MB, as the target is written, in the MiB this figure is measured in.
        figures[6].set_target(Target::AtMost(50e6 / MIB));
    }
    let mut hub_metrics = metrics_delta(&before_queueing, &after);
    hub_metrics["rss_before_queueing_mib"] = json!(rss_empty.map(|r| r as f64 / MIB));
    hub_metrics["rss_peak_during_flush_mib"] = json!(peak as f64 / MIB);
    Ok(vec![Phase {
        name: format!("{} × {}", args.agents, args.per_agent),
        figures,
        verdict,
        hub_metrics,
    }])
}
