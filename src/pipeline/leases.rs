//! What the pull side of the queue (MCP's `next_events`) has handed out and not yet seen
//! acked, per agent: each handed-out delivery is leased until its ack timeout, and is not
//! handed out again before then. The lease is the pull consumer's window, as
//! [`crate::socket::window::Window`] is the socket's.
//!
//! Leases live in memory on purpose. Losing them (a restart) only makes every unacked
//! delivery available again at once, which at-least-once delivery allows; keeping them
//! durable would cost a commit per call. Attempts are counted durably all the same, by
//! the writer's `sent` marks.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::domain::ids::{AgentId, DeliveryId};

/// Most deliveries one agent may have handed out and unacked at once through the pull
/// side; past it, `next_events` answers `conflict`, saying so, until some are acked or
/// time out.
pub const MAX_HANDED_OUT: usize = 1000;

/// One delivery handed out: until when, as which attempt, when (wall clock, ms), and
/// where its attempt limit counts from.
#[derive(Clone, Copy, Debug)]
struct Lease {
    until: Instant,
    attempt: i64,
    sent_ms: i64,
    base: i64,
}

/// A lease that ran out unacked: its attempt has ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lapsed {
    pub id: DeliveryId,
    pub attempt: i64,
    pub sent_ms: i64,
    pub base: i64,
}

/// One agent's leases. Calls for the same agent take turns on it (see
/// [`Leases::agent`]), so two calls never hand out the same delivery.
#[derive(Default, Debug)]
pub struct HandedOut {
    out: HashMap<DeliveryId, Lease>,
    /// Leases that ran out at the last [`HandedOut::expire`]: their attempt numbers, so
    /// that a delivery handed out again counts on even if its `sent` mark is not yet
    /// committed.
    lapsed: HashMap<DeliveryId, i64>,
}

impl HandedOut {
    /// Ends the leases whose time has passed, and returns them. Call it before reading
    /// the queue.
    pub fn expire(&mut self, now: Instant) -> Vec<Lapsed> {
        self.lapsed.clear();
        let lapsed = &mut self.lapsed;
        let mut ended = Vec::new();
        self.out.retain(|id, lease| {
            let live = lease.until > now;
            if !live {
                lapsed.insert(id.clone(), lease.attempt);
                ended.push(Lapsed {
                    id: id.clone(),
                    attempt: lease.attempt,
                    sent_ms: lease.sent_ms,
                    base: lease.base,
                });
            }
            live
        });
        ended
    }

    /// The attempt a delivery handed out now would be: after both the stored count and
    /// any lease of it that just ran out.
    pub fn next_attempt(&self, id: &DeliveryId, stored_attempts: i64) -> i64 {
        let lapsed = self.lapsed.get(id).copied().unwrap_or(0);
        stored_attempts.max(lapsed) + 1
    }

    pub fn is_out(&self, id: &DeliveryId) -> bool {
        self.out.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Leases `id` until `until`, as [`HandedOut::next_attempt`]; returns that attempt.
    pub fn hand_out(
        &mut self,
        id: &DeliveryId,
        stored_attempts: i64,
        base: i64,
        until: Instant,
        sent_ms: i64,
    ) -> i64 {
        let attempt = self.next_attempt(id, stored_attempts);
        self.out.insert(
            id.clone(),
            Lease {
                until,
                attempt,
                sent_ms,
                base,
            },
        );
        attempt
    }

    /// The attempt acked, if it was leased.
    pub fn acked(&mut self, id: &DeliveryId) -> Option<i64> {
        self.lapsed.remove(id);
        self.out.remove(id).map(|l| l.attempt)
    }

    /// When the first lease runs out, which makes its delivery available again.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.out.values().map(|l| l.until).min()
    }
}

/// Every agent's [`HandedOut`], for the pull side.
pub struct Leases {
    agents: Mutex<HashMap<AgentId, Arc<tokio::sync::Mutex<HandedOut>>>>,
    pub ack_timeout: Duration,
}

impl Leases {
    pub fn new(ack_timeout: Duration) -> Self {
        Self {
            agents: Mutex::new(HashMap::new()),
            ack_timeout,
        }
    }

    /// The agent's leases, to lock while handing out or acking.
    pub fn agent(&self, agent_id: &AgentId) -> Arc<tokio::sync::Mutex<HandedOut>> {
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        agents.entry(agent_id.clone()).or_default().clone()
    }

    /// Forgets an agent that holds no leases, so that the map holds only agents with
    /// something handed out. `leases` is the caller's handle, given back.
    pub fn release(&self, agent_id: &AgentId, leases: Arc<tokio::sync::Mutex<HandedOut>>) {
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        // Two handles (the map's and the caller's) mean nobody else is using it, and
        // nobody can take a new one while the map is locked.
        let idle = Arc::strong_count(&leases) == 2
            && leases.try_lock().map(|h| h.is_empty()).unwrap_or(false);
        if idle {
            agents.remove(agent_id);
        }
    }

    #[cfg(test)]
    fn agents_held(&self) -> usize {
        self.agents.lock().map(|a| a.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_holds_until_its_time_then_the_next_attempt_counts_on() {
        let t0 = Instant::now();
        let mut h = HandedOut::default();
        let id = DeliveryId::generate();
        assert_eq!(h.hand_out(&id, 0, 0, t0 + Duration::from_secs(30), 0), 1);
        h.expire(t0 + Duration::from_secs(29));
        assert!(h.is_out(&id));
        assert_eq!(h.next_expiry(), Some(t0 + Duration::from_secs(30)));
        h.expire(t0 + Duration::from_secs(30));
        assert!(!h.is_out(&id));
        // The `sent` mark of attempt 1 may not be committed yet: the stored count still
        // says 0, and the lapsed lease says 1.
        assert_eq!(h.hand_out(&id, 0, 0, t0 + Duration::from_secs(60), 0), 2);
        // Once the store has counted more (sent over the socket meanwhile), it wins.
        h.expire(t0 + Duration::from_secs(60));
        assert_eq!(h.hand_out(&id, 5, 0, t0 + Duration::from_secs(90), 0), 6);
    }

    #[test]
    fn an_ack_ends_the_lease_and_what_lapsed_is_forgotten_at_the_next_expiry() {
        let t0 = Instant::now();
        let mut h = HandedOut::default();
        let (a, b) = (DeliveryId::generate(), DeliveryId::generate());
        h.hand_out(&a, 0, 0, t0 + Duration::from_secs(1), 0);
        h.hand_out(&b, 0, 0, t0 + Duration::from_secs(2), 0);
        h.acked(&b);
        assert_eq!(h.len(), 1);
        h.expire(t0 + Duration::from_secs(5));
        assert!(h.is_empty());
        assert_eq!(h.next_expiry(), None);
        h.expire(t0 + Duration::from_secs(6));
        // `a` lapsed two expiries ago: its next attempt comes from the store alone.
        assert_eq!(h.hand_out(&a, 1, 0, t0 + Duration::from_secs(9), 0), 2);
    }

    #[tokio::test]
    async fn an_agent_with_nothing_out_is_forgotten_and_one_in_use_is_kept() {
        let leases = Leases::new(Duration::from_secs(30));
        let agent = AgentId::generate();
        let mine = leases.agent(&agent);
        let other = leases.agent(&agent);
        leases.release(&agent, mine);
        assert_eq!(leases.agents_held(), 1, "another call still holds it");
        other.lock().await.hand_out(
            &DeliveryId::generate(),
            0,
            0,
            Instant::now() + Duration::from_secs(9),
            0,
        );
        leases.release(&agent, other);
        assert_eq!(leases.agents_held(), 1, "it has a lease out");
        let again = leases.agent(&agent);
        again
            .lock()
            .await
            .expire(Instant::now() + Duration::from_secs(10));
        leases.release(&agent, again);
        assert_eq!(leases.agents_held(), 0);
    }
}
