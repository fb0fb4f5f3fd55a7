//! `mcp`: one agent's backlog drained by an MCP consumer, beside the same backlog flushed
//! over the agent's WebSocket in the same run.
//!
//! N deliveries are queued while the agent is offline, then read with `next_events`
//! (`max` 100, each call acking the batch before it) over one keep-alive connection to
//! `POST /v1/mcp`, as a client of the stateless Streamable HTTP transport does: JSON-RPC
//! `tools/call` with the agent's token, answered as JSON. It times each round trip and the
//! whole drain, and judges loss and order exactly as the socket scenarios do. Then the
//! WebSocket phase queues N more for the same agent and times their flush.

use std::{
    collections::HashMap,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use bytes::Bytes;
use hyper::Method;
use serde_json::json;

use super::{
    backlog, bytes_per_delivery, cpu_per_1000, ingest::setup, metrics_delta, post_all,
    wait_acks_committed, Common,
};
use crate::{
    agent::{new_histogram, on_text, AgentLedger, Progress},
    http::Conn,
    hub::{self, Hub},
    post::Plan,
    report::{latency_figures, Figure, Phase},
    verdict::judge,
    Error,
};

pub struct Args {
    pub events: u64,
    pub posters: usize,
    pub body_bytes: usize,
}

/// Events per `next_events` call: the most the tool hands out at once.
const BATCH: u32 = 100;

pub async fn run(hub: &mut Hub, common: &Common, args: Args) -> Result<Vec<Phase>, Error> {
    let mut phases = vec![drain_over_mcp(hub, common, &args).await?];
    // The same backlog over the socket, for the ratio between the two.
    let socket = backlog::run(
        hub,
        common,
        backlog::Args {
            agents: 1,
            per_agent: args.events,
            posters: args.posters,
            body_bytes: args.body_bytes,
            connect_concurrency: 1,
        },
    )
    .await?;
    phases.extend(socket.into_iter().map(|mut p| {
        p.name = format!("websocket, {}", p.name);
        p
    }));
    Ok(phases)
}

async fn drain_over_mcp(hub: &mut Hub, common: &Common, args: &Args) -> Result<Phase, Error> {
    let (webhooks, tokens) = setup(hub, 1).await?;
    let token = tokens
        .into_iter()
        .next()
        .map(|(_, t)| t)
        .ok_or("no agent was made")?;
    let before_queueing = hub::scrape(hub).await?;
    let plan = Plan {
        addr: hub.addr,
        webhooks,
        body_bytes: args.body_bytes,
        rate: None,
        posters: args.posters,
        run_id: 0,
        total: args.events,
    };
    let (posters, _) = post_all(plan).await?;
    let accepted: u64 = posters.iter().map(|p| p.accepted.len() as u64).sum();

    let before = hub::scrape(hub).await?;
    let cpu0 = hub.cpu_time();
    let io0 = hub.written_bytes();
    let mut conn = Conn::open(hub.addr).await?;
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    let mut ledger = AgentLedger::default();
    let mut last_seq = HashMap::new();
    let progress = Progress::default();
    let mut round_trips = new_histogram();
    let mut ack: Vec<String> = Vec::new();
    let mut calls = 0u64;
    let started = Instant::now();
    let deadline = started + common.drain;
    loop {
        let call = json!({
            "jsonrpc": "2.0", "id": calls, "method": "tools/call",
            "params": {"name": "next_events", "arguments": {"max": BATCH, "waitSeconds": 0, "ack": ack}},
        });
        let sent = Instant::now();
        let reply = conn
            .request(
                Method::POST,
                "/v1/mcp",
                &headers,
                Bytes::from(serde_json::to_vec(&call)?),
            )
            .await?;
        round_trips.saturating_record((sent.elapsed().as_micros() as u64).max(1));
        calls += 1;
        let answer = reply.json();
        let result = &answer["result"]["structuredContent"];
        let Some(events) = result["events"].as_array() else {
            return Err(format!("next_events answered {}: {answer}", reply.status).into());
        };
        ack = Vec::with_capacity(events.len());
        for e in events {
            // Recorded as the socket's frame would be, by the same ledger.
            let frame =
                json!({"type": "delivery", "deliveryId": e["deliveryId"], "body": e["body"]});
            if let Some(id) = e["deliveryId"].as_str() {
                on_text(&frame.to_string(), &mut ledger, &mut last_seq, &progress);
                ack.push(id.to_owned());
            }
        }
        let done = progress.first_receipts.load(Ordering::Relaxed) >= accepted;
        if (ack.is_empty() && done) || Instant::now() > deadline {
            break;
        }
    }
    let drained = started.elapsed();
    let all_in = progress.first_receipts.load(Ordering::Relaxed) >= accepted;
    let acks = wait_acks_committed(hub, &before, accepted, common.drain).await?;
    let cpu1 = hub.cpu_time();
    let io1 = hub.written_bytes();
    let after = hub::scrape(hub).await?;

    let mut verdict = judge(&posters, &[ledger]);
    verdict.drained("queued", all_in, acks, common.drain);
    if let Some(exit) = hub.exited() {
        verdict.problems.push(exit);
    }
    let mut figures = vec![
        Figure::new("queued (offline)", Some(accepted as f64), "deliveries"),
        Figure::new(
            "drained over MCP",
            (drained > Duration::ZERO).then(|| accepted as f64 / drained.as_secs_f64()),
            "/s",
        ),
        Figure::new("next_events calls", Some(calls as f64), "calls"),
        Figure::new(
            "hub CPU per 1,000 drained",
            cpu_per_1000(cpu0, cpu1, accepted),
            "s",
        ),
        Figure::new(
            "bytes written per delivery drained",
            bytes_per_delivery(io0, io1, accepted),
            "B",
        ),
    ];
    figures.extend(latency_figures("next_events round trip", &round_trips));
    let mut hub_metrics = metrics_delta(&before_queueing, &after);
    hub_metrics["next_events_calls"] = json!(calls);
    Ok(Phase {
        name: format!("mcp, 1 × {}", args.events),
        figures,
        verdict,
        hub_metrics,
    })
}
