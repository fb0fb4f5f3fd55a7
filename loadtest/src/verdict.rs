//! The verdict of a run: every 202 against what the agents received.

use std::collections::HashMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{agent::AgentLedger, post::PosterResult};

#[derive(Debug, Default, Serialize)]
pub struct Verdict {
    /// Posts answered 202.
    pub accepted: u64,
    /// Accepted deliveries that reached their agent at least once.
    pub received: u64,
    /// Accepted, never received.
    pub lost: u64,
    /// Receipts beyond the first of a delivery (at-least-once allows them; reported).
    pub duplicates: u64,
    /// Received by an agent other than the webhook's owner.
    pub misrouted: u64,
    /// Received but never answered 202 to the poster.
    pub unknown: u64,
    /// First receipts that broke a poster's order at an agent.
    pub reordered: u64,
    /// Posts not answered 202 (status or transport).
    pub post_errors: u64,
    /// Frames an agent did not expect, and sockets that ended early.
    pub agent_errors: u64,
    /// Every acked delivery is committed as acked (per `/metrics`).
    pub acks_committed: bool,
    pub problems: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// Records how the wait after posting ended: whether every `what` delivery arrived,
    /// and whether the hub committed every ack, each within `drain`.
    pub fn drained(&mut self, what: &str, all_in: bool, acks: bool, drain: std::time::Duration) {
        self.acks_committed = acks;
        if !all_in {
            self.problems.push(format!(
                "not every {what} delivery arrived within {drain:?}"
            ));
        }
        if !acks {
            self.problems
                .push(format!("the hub did not commit every ack within {drain:?}"));
        }
    }
}

/// Merges what the posters were answered with what the agents received.
pub fn judge(posters: &[PosterResult], ledgers: &[AgentLedger]) -> Verdict {
    let mut v = Verdict::default();
    let mut expected: HashMap<&str, usize> = HashMap::new();
    for p in posters {
        v.accepted += p.accepted.len() as u64;
        v.post_errors += p.errors;
        for (id, agent) in &p.accepted {
            expected.insert(id.as_str(), *agent);
        }
        if let Some(e) = &p.first_error {
            v.problems.push(format!("post failed: {e}"));
        }
    }
    for l in ledgers {
        for (id, count) in &l.received {
            v.duplicates += u64::from(count - 1);
            match expected.remove(id.as_str()) {
                Some(agent) if agent == l.agent => v.received += 1,
                Some(_) => {
                    v.received += 1;
                    v.misrouted += 1;
                }
                None => v.unknown += 1,
            }
        }
        v.reordered += l.reordered;
        if let Some(r) = &l.first_reorder {
            v.problems.push(format!("agent {} reordered: {r}", l.agent));
        }
        v.agent_errors += l.unexpected_frames + u64::from(l.failure.is_some());
        if let Some(f) = &l.first_unexpected {
            v.problems
                .push(format!("agent {} got an unexpected frame: {f}", l.agent));
        }
        if let Some(f) = &l.failure {
            v.problems.push(format!("agent {}: {f}", l.agent));
        }
    }
    v.lost = expected.len() as u64;
    if v.lost > 0 {
        let some: Vec<&str> = expected.keys().take(5).copied().collect();
        v.problems.push(format!(
            "{} accepted deliveries never reached their agent, e.g. {some:?}",
            v.lost
        ));
    }
    if v.misrouted > 0 {
        v.problems.push(format!(
            "{} deliveries reached the wrong agent",
            v.misrouted
        ));
    }
    if v.unknown > 0 && v.post_errors == 0 {
        v.problems.push(format!(
            "{} deliveries arrived that no post was answered for",
            v.unknown
        ));
    }
    if v.post_errors > 0 {
        v.problems
            .push(format!("{} posts were not answered 202", v.post_errors));
    }
    // Problems repeat per agent; a few say enough.
    v.problems.truncate(20);
    v
}

/// Merges per-agent latency histograms.
pub fn merged_latency(ledgers: &[AgentLedger]) -> Histogram<u64> {
    let mut h = crate::agent::new_histogram();
    for l in ledgers {
        if let Some(x) = &l.latency {
            let _ = h.add(x);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{new_histogram, on_text, Progress};

    fn poster(accepted: &[(&str, usize)]) -> PosterResult {
        PosterResult {
            accepted: accepted
                .iter()
                .map(|(id, a)| ((*id).to_owned(), *a))
                .collect(),
            latency: new_histogram(),
            lag: new_histogram(),
            errors: 0,
            first_error: None,
        }
    }

    fn delivery(id: &str, p: u32, s: u64) -> String {
        let body = format!(r#"{{"p":{p},"s":{s},"t":1,"pad":""}}"#);
        serde_json::json!({"type": "delivery", "deliveryId": id, "body": body}).to_string()
    }

    /// Feeds frames to a fresh ledger the way an agent's socket does.
    fn ledger(agent: usize, frames: &[String]) -> AgentLedger {
        let mut l = AgentLedger {
            agent,
            ..AgentLedger::default()
        };
        let mut last = HashMap::new();
        let progress = Progress::default();
        for f in frames {
            on_text(f, &mut l, &mut last, &progress);
        }
        l
    }

    #[test]
    fn everything_received_once_in_order_passes() {
        let posters = [poster(&[("dlv_a", 0), ("dlv_b", 0)])];
        let l = ledger(0, &[delivery("dlv_a", 0, 0), delivery("dlv_b", 0, 1)]);
        let v = judge(&posters, &[l]);
        assert!(v.passed(), "{:?}", v.problems);
        assert_eq!((v.accepted, v.received, v.lost, v.duplicates), (2, 2, 0, 0));
    }

    #[test]
    fn a_lost_delivery_fails() {
        let posters = [poster(&[("dlv_a", 0), ("dlv_b", 0)])];
        let v = judge(&posters, &[ledger(0, &[delivery("dlv_a", 0, 0)])]);
        assert_eq!(v.lost, 1);
        assert!(!v.passed());
    }

    #[test]
    fn reordering_fails_and_duplicates_are_counted() {
        let posters = [poster(&[("dlv_a", 0), ("dlv_b", 0)])];
        let l = ledger(
            0,
            &[
                delivery("dlv_b", 0, 1),
                delivery("dlv_a", 0, 0),
                delivery("dlv_a", 0, 0),
            ],
        );
        let v = judge(&posters, &[l]);
        assert_eq!((v.reordered, v.duplicates, v.lost), (1, 1, 0));
        assert!(!v.passed());
    }

    #[test]
    fn misrouted_and_unknown_deliveries_fail() {
        let posters = [poster(&[("dlv_a", 0)])];
        let v = judge(
            &posters,
            &[ledger(
                1,
                &[delivery("dlv_a", 0, 0), delivery("dlv_x", 0, 1)],
            )],
        );
        assert_eq!((v.misrouted, v.unknown), (1, 1));
        assert!(!v.passed());
    }
}
