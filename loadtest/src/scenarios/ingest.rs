//! `ingest`: N agents online and acking, M posters, bodies of B bytes; closed loop (as fast
//! as the hub answers) or open loop (a fixed rate, latency from the scheduled send time).

use std::{sync::Arc, time::Duration};

use serde_json::json;

use super::{
    bytes_per_delivery, connect_agents, cpu_per_1000, metrics_delta, post_all, wait_acks_committed,
    Common,
};
use crate::{
    agent::new_histogram,
    hub::{self, create_agents, Hub, Webhook},
    post::Plan,
    report::{latency_figures, Figure, Phase, Target},
    sys,
    verdict::{judge, merged_latency},
    Error,
};

pub struct Args {
    pub agents: usize,
    pub posters: usize,
    pub body_bytes: usize,
    pub requests: u64,
    pub rate: Option<f64>,
}

/// The webhooks of `count` new agents, and their tokens by index.
pub async fn setup(
    hub: &Hub,
    count: usize,
) -> Result<(Arc<Vec<Webhook>>, Vec<(usize, String)>), Error> {
    let agents = create_agents(hub, count, true, 8).await?;
    let mut webhooks = Vec::with_capacity(count);
    let mut tokens = Vec::with_capacity(count);
    for (i, a) in agents.into_iter().enumerate() {
        webhooks.push(a.webhook.ok_or("an agent was made without its webhook")?);
        tokens.push((i, a.token));
    }
    Ok((Arc::new(webhooks), tokens))
}

/// One run of posts against online agents, judged; `name` labels the phase.
pub async fn online_phase(
    hub: &mut Hub,
    common: &Common,
    name: String,
    webhooks: Arc<Vec<Webhook>>,
    tokens: Vec<(usize, String)>,
    args: &Args,
) -> Result<Phase, Error> {
    let n_agents = tokens.len() as u64;
    let online = connect_agents(hub, tokens, false, 64).await?;
    if !online
        .wait_connected(n_agents, Duration::from_secs(30))
        .await
    {
        return Err("the agents' sockets did not all open within 30 s".into());
    }
    let before = hub::scrape(hub).await?;
    let (cpu0, own0, io0) = (hub.cpu_time(), sys::own_cpu_time(), hub.written_bytes());
    let plan = Plan {
        addr: hub.addr,
        webhooks,
        body_bytes: args.body_bytes,
        rate: args.rate,
        posters: args.posters,
        run_id: 0,
        total: args.requests,
    };
    let (posters, posting) = post_all(plan).await?;
    let accepted: u64 = posters.iter().map(|p| p.accepted.len() as u64).sum();
    let all_in = online.wait_received(accepted, common.drain).await;
    let acks = wait_acks_committed(hub, &before, accepted, common.drain).await?;
    let (cpu1, own1, io1) = (hub.cpu_time(), sys::own_cpu_time(), hub.written_bytes());
    let ledgers = online.finish().await;
    let after = hub::scrape(hub).await?;

    let mut verdict = judge(&posters, &ledgers);
    verdict.drained("accepted", all_in, acks, common.drain);
    if let Some(exit) = hub.exited() {
        verdict.problems.push(exit);
    }

    let mut latency = new_histogram();
    let mut lag = new_histogram();
    for p in &posters {
        let _ = latency.add(&p.latency);
        let _ = lag.add(&p.lag);
    }
    let rate = accepted as f64 / posting.as_secs_f64();
    let mut figures = vec![Figure::new("accepted", Some(rate), "/s")];
    if args.rate.is_none() && args.body_bytes == 1024 {
        figures[0] = Figure::new("accepted", Some(rate), "/s").target(Target::AtLeast(15_000.0));
    }
    let label = if args.rate.is_some() {
        "ingest (from schedule)"
    } else {
        "ingest"
    };
    figures.extend(latency_figures(label, &latency));
    figures.extend(latency_figures("POST-to-agent", &merged_latency(&ledgers)));
    if args.rate.is_some() {
        figures.push(Figure::new(
            "send lag p99",
            (!lag.is_empty()).then(|| lag.value_at_quantile(0.99) as f64 / 1000.0),
            "ms",
        ));
    }
    figures.push(Figure::new(
        "hub CPU per 1,000 deliveries",
        cpu_per_1000(cpu0, cpu1, accepted),
        "s",
    ));
    figures.push(Figure::new(
        "hub bytes written per delivery",
        bytes_per_delivery(io0, io1, accepted),
        "B",
    ));
    figures.push(Figure::new(
        "loadtest CPU per 1,000 deliveries",
        cpu_per_1000(Some(own0), Some(own1), accepted),
        "s",
    ));
    let mut hub_metrics = metrics_delta(&before, &after);
    hub_metrics["posting_seconds"] = json!(posting.as_secs_f64());
    Ok(Phase {
        name,
        figures,
        verdict,
        hub_metrics,
    })
}

pub async fn run(hub: &mut Hub, common: &Common, args: Args) -> Result<Vec<Phase>, Error> {
    let (webhooks, tokens) = setup(hub, args.agents).await?;
    let name = match args.rate {
        Some(r) => format!("open loop {r}/s"),
        None => "closed loop".to_owned(),
    };
    Ok(vec![
        online_phase(hub, common, name, webhooks, tokens, &args).await?,
    ])
}
