//! `one-agent`: the everyday shape of load. One agent receives one busy webhook from
//! `posters` concurrent senders and acks each delivery as it arrives: closed loop (as
//! fast as the hub answers), then open loop at `rate` for `seconds`, on the same agent.

use super::{
    ingest::{online_phase, setup, Args as IngestArgs},
    Common,
};
use crate::{
    hub::Hub,
    report::{Phase, Target},
    Error,
};

pub struct Args {
    pub posters: usize,
    pub body_bytes: usize,
    /// Posts of the closed-loop phase.
    pub requests: u64,
    pub rate: f64,
    pub seconds: f64,
}

pub async fn run(hub: &mut Hub, common: &Common, args: Args) -> Result<Vec<Phase>, Error> {
    let (webhooks, tokens) = setup(hub, 1).await?;
    let closed = online_phase(
        hub,
        common,
        format!("one agent, {} posters, closed loop", args.posters),
        webhooks.clone(),
        tokens.clone(),
        &IngestArgs {
            agents: 1,
            posters: args.posters,
            body_bytes: args.body_bytes,
            requests: args.requests,
            rate: None,
        },
    )
    .await?;
    // The ingest scenario's throughput target is for four agents; one agent's goal is a
    // ratio to the build before, read from two runs.
    let mut closed = closed;
    for f in closed.figures.iter_mut().filter(|f| f.name == "accepted") {
        f.target = None;
        f.met = None;
    }
    let mut open = online_phase(
        hub,
        common,
        format!("one agent, {} posters, {}/s", args.posters, args.rate),
        webhooks,
        tokens,
        &IngestArgs {
            agents: 1,
            posters: args.posters,
            body_bytes: args.body_bytes,
            requests: ((args.rate * args.seconds).round() as u64).max(1),
            rate: Some(args.rate),
        },
    )
    .await?;
    // The goals for one agent at 1,000/s; at another rate they say nothing.
    if args.rate == 1000.0 {
        for f in &mut open.figures {
            match f.name.as_str() {
                "POST-to-agent p50" => f.set_target(Target::AtMost(1.0)),
                "POST-to-agent p99" => f.set_target(Target::AtMost(5.0)),
                "hub CPU per 1,000 deliveries" => f.set_target(Target::AtMost(0.15)),
                _ => {}
            }
        }
    }
    Ok(vec![closed, open])
}
