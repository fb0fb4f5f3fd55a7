//! What `listen` remembers about deliveries so that its sink gets each one once, although
//! the hub delivers at least once.
//!
//! A delivery comes again in two ways. While it waits its turn or is being forwarded, the
//! hub resends it after its ack timeout, or after a reconnect: that copy is dropped, the
//! first one is acked when its sink has it. After it was acked, it comes again only if the
//! ack was lost with the connection (the hub never recorded it), or if someone asked the
//! hub to redeliver it. The first must not reach the app twice; the second must reach it
//! again, or a redeliver button would seem to do nothing. Frames do not tell them apart,
//! but timing does: acks sent shortly before a connection ended are *uncertain*, and since
//! the hub hands over every agent's deliveries in queue order, an uncertain delivery comes
//! again, if at all, before any delivery this process has never seen. So an uncertain
//! delivery is acked without forwarding the first time it comes again, and the first new
//! delivery ends all uncertainty. A redeliver asked for while connected always forwards.
//!
//! All of it lasts as long as the process; a new `listen` starts with an empty ledger.

use std::{
    collections::{HashSet, VecDeque},
    time::{Duration, Instant},
};

/// Acks sent this long before a connection was found dead may not have reached the hub.
/// It covers a dead peer noticed late (listen's idle timeout is 45 s) and acks the hub
/// received but had not yet committed.
pub const UNCERTAIN_FOR: Duration = Duration::from_secs(120);

/// Most acks remembered per connection, so a long burst cannot grow memory without bound.
const MAX_REMEMBERED: usize = 100_000;

/// What to do with a delivery that just arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    /// New: hand it to the sink, then ack it.
    Take,
    /// Already taken and not yet acked: drop this copy.
    Have,
    /// Its sink already has it but the hub may not know: ack it, do not hand it over.
    AckAgain,
}

#[derive(Default)]
pub struct Ledger {
    /// Taken and not yet acked: waiting its turn or being handed over.
    pending: HashSet<String>,
    /// Acked on the current connection, oldest first, with when.
    acked: VecDeque<(Instant, String)>,
    /// Acked, but perhaps never recorded by the hub.
    uncertain: HashSet<String>,
}

impl Ledger {
    pub fn arrive(&mut self, delivery_id: &str, now: Instant) -> Arrival {
        if self.pending.contains(delivery_id) {
            return Arrival::Have;
        }
        if self.uncertain.remove(delivery_id) {
            // This ack can be lost too.
            self.remember_ack(delivery_id, now);
            return Arrival::AckAgain;
        }
        // Lost acks would have come before anything new: none is coming any more.
        self.uncertain.clear();
        self.pending.insert(delivery_id.to_owned());
        Arrival::Take
    }

    /// The sink has the delivery; `sent` says whether its ack went out on a connection.
    pub fn done(&mut self, delivery_id: &str, sent: bool, now: Instant) {
        self.pending.remove(delivery_id);
        if sent {
            self.remember_ack(delivery_id, now);
        } else {
            self.uncertain.insert(delivery_id.to_owned());
        }
    }

    /// The sink refused the delivery and it was handed back (nacked): when it comes again
    /// it is a new attempt, to take.
    pub fn handed_back(&mut self, delivery_id: &str) {
        self.pending.remove(delivery_id);
    }

    /// The connection ended: its recent acks may not have reached the hub.
    pub fn connection_ended(&mut self, now: Instant) {
        for (at, id) in self.acked.drain(..) {
            if now.duration_since(at) <= UNCERTAIN_FOR {
                self.uncertain.insert(id);
            }
        }
    }

    fn remember_ack(&mut self, delivery_id: &str, now: Instant) {
        while let Some((at, _)) = self.acked.front() {
            if now.duration_since(*at) > UNCERTAIN_FOR || self.acked.len() >= MAX_REMEMBERED {
                self.acked.pop_front();
            } else {
                break;
            }
        }
        self.acked.push_back((now, delivery_id.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_of_a_delivery_in_hand_is_dropped() {
        let mut l = Ledger::default();
        let t = Instant::now();
        assert_eq!(l.arrive("dlv_a", t), Arrival::Take);
        assert_eq!(l.arrive("dlv_a", t), Arrival::Have);
        l.done("dlv_a", true, t);
        // Asked for again while connected: a redeliver, forwarded again.
        assert_eq!(l.arrive("dlv_a", t), Arrival::Take);
    }

    #[test]
    fn a_delivery_acked_just_before_the_connection_ended_is_acked_again_not_taken() {
        let mut l = Ledger::default();
        let t = Instant::now();
        assert_eq!(l.arrive("dlv_a", t), Arrival::Take);
        l.done("dlv_a", true, t);
        l.connection_ended(t + Duration::from_secs(1));
        assert_eq!(l.arrive("dlv_a", t), Arrival::AckAgain);
        // Only once: after that, it is a redeliver.
        assert_eq!(l.arrive("dlv_b", t), Arrival::Take);
        l.done("dlv_b", true, t);
        assert_eq!(l.arrive("dlv_a", t), Arrival::Take);
    }

    #[test]
    fn an_ack_with_no_connection_to_go_on_is_uncertain() {
        let mut l = Ledger::default();
        let t = Instant::now();
        l.arrive("dlv_a", t);
        l.done("dlv_a", false, t);
        assert_eq!(l.arrive("dlv_a", t), Arrival::AckAgain);
    }

    #[test]
    fn the_first_new_delivery_ends_the_uncertainty() {
        let mut l = Ledger::default();
        let t = Instant::now();
        for id in ["dlv_a", "dlv_b"] {
            l.arrive(id, t);
            l.done(id, true, t);
        }
        l.connection_ended(t);
        assert_eq!(l.arrive("dlv_c", t), Arrival::Take);
        assert_eq!(l.arrive("dlv_a", t), Arrival::Take);
    }

    #[test]
    fn old_acks_are_certain() {
        let mut l = Ledger::default();
        let t = Instant::now();
        l.arrive("dlv_a", t);
        l.done("dlv_a", true, t);
        l.connection_ended(t + UNCERTAIN_FOR + Duration::from_secs(1));
        assert_eq!(l.arrive("dlv_a", t), Arrival::Take);
    }
}
