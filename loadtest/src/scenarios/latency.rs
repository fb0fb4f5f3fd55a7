//! `latency`: POST-to-agent latency at fixed rates. Each rate is an open-loop run against
//! agents online and acking; the agent reads the send time from the body, on the same
//! clock, when the frame arrives.

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
    pub rates: Vec<f64>,
    pub seconds: f64,
    pub agents: usize,
    pub posters: usize,
    pub body_bytes: usize,
}

pub async fn run(hub: &mut Hub, common: &Common, args: Args) -> Result<Vec<Phase>, Error> {
    let (webhooks, tokens) = setup(hub, args.agents).await?;
    let mut phases = Vec::new();
    for &rate in &args.rates {
        let requests = ((rate * args.seconds).round() as u64).max(1);
        let ingest = IngestArgs {
            agents: args.agents,
            posters: args.posters,
            body_bytes: args.body_bytes,
            requests,
            rate: Some(rate),
        };
        let mut phase = online_phase(
            hub,
            common,
            format!("{rate}/s"),
            webhooks.clone(),
            tokens.clone(),
            &ingest,
        )
        .await?;
        // The targets: at 1,000/s p50 ≤ 1 ms and p99 ≤ 5 ms; at 10,000/s p99 ≤ 20 ms.
        for f in &mut phase.figures {
            let target = match (rate as u64, f.name.as_str()) {
                (1000, "POST-to-agent p50") => Some(Target::AtMost(1.0)),
                (1000, "POST-to-agent p99") => Some(Target::AtMost(5.0)),
                (10000, "POST-to-agent p99") => Some(Target::AtMost(20.0)),
                _ => None,
            };
            if let Some(t) = target {
                f.set_target(t);
            }
        }
        phases.push(phase);
    }
    Ok(phases)
}
