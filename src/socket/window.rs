//! What one agent session has taken from its queue, and what it may send next: the state
//! that carries the socket's guarantee (every delivery of the agent, in queue order, none
//! skipped and none sent twice on one connection but for an ack timeout), kept apart from
//! the actor and the socket so that it can be tested as plain data.
//!
//! The store is the queue of record. The window reads it page by page, and takes live
//! deliveries pushed by the registry only while it knows it has everything before them
//! (it is "in sync"). When it cannot be sure (a push was dropped, its buffer was full, it
//! just connected) it reads from the store again, after the last position it has. So the
//! seam between backlog and live has no gap, no duplicate and no reordering, and a slow
//! agent costs at most two windows of deliveries in memory.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use crate::domain::{
    ids::DeliveryId, out_of_attempts, AttemptEnd, AttemptOutcome, FailReason, HandlerResult,
    PendingDelivery, Via,
};

/// The wait before a delivery nacked with requeue goes again: a second after the first
/// attempt, doubling with each attempt, at most a minute.
pub fn nack_backoff(attempt: i64) -> Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1).clamp(0, 6)).unwrap_or(6);
    (Duration::from_secs(1) * 2u32.pow(doublings)).min(Duration::from_secs(60))
}

/// A read of the queue the window asks for: deliveries after `after`, at most `limit` of
/// them and `max_bytes` of bodies, the first one whatever its size if `first_always`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    pub after: i64,
    pub limit: u32,
    pub max_bytes: usize,
    pub first_always: bool,
}

/// What a read of the queue found.
#[derive(Debug)]
pub struct Page {
    pub deliveries: Vec<PendingDelivery>,
    /// Nothing was left out: the queue held no more after this page when it was read.
    pub is_short: bool,
}

/// A delivery to write to the socket now, and which attempt this is.
#[derive(Debug, Clone)]
pub struct Send {
    pub delivery: Arc<PendingDelivery>,
    pub attempt: i64,
}

#[derive(Debug)]
struct InFlight {
    delivery: Arc<PendingDelivery>,
    attempt: i64,
    sent_at: Instant,
    /// Wall-clock ms of the send, for the history.
    sent_ms: i64,
    /// Nacked with requeue: goes again at this time, not at the ack timeout.
    retry_at: Option<Instant>,
}

impl InFlight {
    fn end(&self, outcome: AttemptOutcome, at: i64, max_attempts: u32) -> AttemptEnd {
        let d = &self.delivery;
        AttemptEnd {
            id: d.id.clone(),
            attempt: Some(self.attempt),
            via: Via::Socket,
            sent_at: Some(self.sent_ms),
            outcome,
            at,
            reason: None,
            result: None,
            fail: out_of_attempts(self.attempt, d.attempt_base, max_attempts)
                .then_some(FailReason::MaxAttempts(i64::from(max_attempts))),
        }
    }
}

#[derive(Debug)]
pub struct Window {
    /// Deliveries sent and not acked, at most.
    most: usize,
    /// Body bytes the window may hold, and so may the buffer: a few large deliveries must
    /// not turn a window counted in deliveries into gigabytes. One delivery always fits,
    /// however large, or it could never be sent.
    most_bytes: usize,
    ack_timeout: Duration,
    /// The highest queue position taken (sent or buffered).
    cursor: i64,
    /// Everything of this agent up to `cursor` is taken, and every push since arrived.
    in_sync: bool,
    /// A read is under way, or reads are held (until [`Window::start`]).
    reading: bool,
    /// Taken, not yet sent: at most about two windows.
    buffered: VecDeque<Arc<PendingDelivery>>,
    buffered_bytes: usize,
    /// The last read found the next delivery too large for the buffer's room: read again
    /// only once some of the buffer has gone out, or the read would find the same.
    needs_room: bool,
    in_flight: HashMap<DeliveryId, InFlight>,
    in_flight_bytes: usize,
    /// Sends without an ack before a delivery is given up on; 0: no limit.
    max_attempts: u32,
    /// Attempts that ended unacked, for the session to record: taken by
    /// [`Window::take_ends`].
    ends: Vec<AttemptEnd>,
}

impl Window {
    /// An empty window that reads nothing until [`Window::start`].
    pub fn new(most: usize, most_bytes: usize, ack_timeout: Duration, max_attempts: u32) -> Self {
        Self {
            most: most.max(1),
            most_bytes,
            ack_timeout,
            cursor: 0,
            in_sync: false,
            reading: true,
            buffered: VecDeque::new(),
            buffered_bytes: 0,
            needs_room: false,
            in_flight: HashMap::new(),
            in_flight_bytes: 0,
            max_attempts,
            ends: Vec::new(),
        }
    }

    /// The attempts that ended unacked since the last call, oldest first.
    pub fn take_ends(&mut self) -> Vec<AttemptEnd> {
        std::mem::take(&mut self.ends)
    }

    /// Reads may begin: the session is registered, so every commit from now on is pushed
    /// to it, and the first read cannot miss one.
    pub fn start(&mut self) {
        self.reading = false;
    }

    /// Sent and not yet acked.
    pub fn unacked(&self) -> usize {
        self.in_flight.len()
    }

    /// Nothing sent and unacked, nothing waiting, nothing missing, given that the
    /// registry has routed up to `routed`.
    pub fn is_quiet(&self, routed: i64) -> bool {
        self.in_flight.is_empty()
            && self.buffered.is_empty()
            && self.in_sync
            && !self.reading
            && routed <= self.cursor
    }

    /// Whether `len` more bytes fit beside `held`: always when nothing is held.
    fn fits(&self, held: usize, len: usize) -> bool {
        held == 0 || held + len <= self.most_bytes
    }

    fn buffer(&mut self, d: Arc<PendingDelivery>) {
        self.cursor = d.queue_seq;
        self.buffered_bytes += d.body.len();
        self.buffered.push_back(d);
    }

    /// Whether the buffer has all it may hold: count and bytes both bound it.
    fn buffer_full(&self, most: usize) -> bool {
        self.needs_room || self.buffered.len() >= most || self.buffered_bytes >= self.most_bytes
    }

    /// The read to make now, if one is due: out of sync, none under way, and room in the
    /// buffer. The window counts it as under way until [`Window::read_done`].
    pub fn next_read(&mut self) -> Option<Read> {
        if self.reading || self.in_sync || self.buffer_full(self.most) {
            return None;
        }
        self.reading = true;
        Some(Read {
            after: self.cursor,
            limit: u32::try_from(self.most).unwrap_or(u32::MAX),
            max_bytes: self.most_bytes.saturating_sub(self.buffered_bytes),
            first_always: self.buffered.is_empty(),
        })
    }

    /// A read has ended, with its page (`None`: it failed, and a later one tries again).
    /// `routed` is the last position the registry had routed to this session when the
    /// page arrived: in sync only if the page holds everything up to it.
    pub fn read_done(&mut self, page: Option<Page>, routed: i64) {
        self.reading = false;
        let Some(page) = page else {
            return;
        };
        // With nothing buffered the first delivery always comes: an empty page then only
        // means the queue was empty when read.
        self.needs_room = page.deliveries.is_empty() && !page.is_short && !self.buffered.is_empty();
        for d in page.deliveries {
            if d.queue_seq > self.cursor {
                self.buffer(Arc::new(d));
            }
        }
        // Otherwise a delivery committed during the read may be missing.
        if page.is_short && routed <= self.cursor {
            self.in_sync = true;
        }
    }

    /// Deliveries pushed by the registry; `prev` is the position it routed to this session
    /// just before them. Taken only in sync and with nothing missed in between; otherwise
    /// the window falls out of sync and the next read fetches them from the store.
    pub fn push(&mut self, prev: i64, deliveries: Vec<Arc<PendingDelivery>>) {
        if !self.in_sync || prev > self.cursor {
            self.in_sync = false;
            return;
        }
        for d in deliveries {
            if d.queue_seq <= self.cursor {
                continue;
            }
            if self.buffer_full(2 * self.most) {
                self.in_sync = false;
                break;
            }
            self.buffer(d);
        }
    }

    /// The agent acked `id`; the attempt acked, if it was in flight here. Acks of
    /// deliveries sent on an earlier connection count too: they may be in the buffer,
    /// read again from the store.
    pub fn ack(&mut self, id: &DeliveryId) -> Option<i64> {
        self.forget(id).map(|f| f.attempt)
    }

    /// Stops holding `id` (acked, or no longer pending): what was in flight of it.
    fn forget(&mut self, id: &DeliveryId) -> Option<InFlight> {
        let f = self.in_flight.remove(id);
        if let Some(f) = &f {
            self.in_flight_bytes -= f.delivery.body.len();
        }
        if let Some(i) = self.buffered.iter().position(|d| d.id == *id) {
            if let Some(d) = self.buffered.remove(i) {
                self.buffered_bytes -= d.body.len();
                self.needs_room = false;
            }
        }
        f
    }

    /// Deliveries given up on elsewhere (discarded): never sent again from here.
    pub fn settle(&mut self, ids: &[DeliveryId]) {
        for id in ids {
            self.forget(id);
        }
    }

    /// The agent nacked `id`. With `requeue` it goes again after [`nack_backoff`], unless
    /// that was its last attempt; without, it is given up on at once. A nack of a delivery
    /// not in flight here gives it up all the same when it says so, and is otherwise moot:
    /// the delivery is pending and will be sent.
    pub fn nack(
        &mut self,
        id: &DeliveryId,
        requeue: bool,
        reason: Option<String>,
        result: Option<HandlerResult>,
        now: Instant,
        at: i64,
    ) -> Option<AttemptEnd> {
        let Some(f) = self.in_flight.get_mut(id) else {
            if requeue {
                return None;
            }
            self.forget(id);
            return Some(AttemptEnd {
                id: id.clone(),
                attempt: None,
                via: Via::Socket,
                sent_at: None,
                outcome: AttemptOutcome::Nacked,
                at,
                reason,
                result,
                fail: Some(FailReason::Nacked),
            });
        };
        let mut end = f.end(AttemptOutcome::Nacked, at, self.max_attempts);
        end.reason = reason;
        end.result = result;
        if !requeue {
            end.fail = Some(FailReason::Nacked);
        }
        if end.fail.is_some() {
            self.forget(id);
        } else {
            f.retry_at = Some(now + nack_backoff(f.attempt));
        }
        Some(end)
    }

    /// The socket has ended: every attempt in flight ends unacked, and those that were
    /// the last allowed give their deliveries up.
    pub fn disconnected(&mut self, at: i64) -> Vec<AttemptEnd> {
        let mut flights: Vec<&InFlight> = self.in_flight.values().collect();
        flights.sort_unstable_by_key(|f| f.delivery.queue_seq);
        let ends = flights
            .into_iter()
            .map(|f| f.end(AttemptOutcome::Disconnected, at, self.max_attempts))
            .collect();
        self.in_flight.clear();
        self.in_flight_bytes = 0;
        ends
    }

    /// Moves buffered deliveries into the window, in order, as far as its count and its
    /// bytes allow: each is to be sent now, and counts as sent at `now` (`at` on the
    /// wall clock). One already handed out as often as allowed (its last attempt's end
    /// went unrecorded: the hub stopped abruptly) is given up on instead.
    pub fn take_sendable(&mut self, now: Instant, at: i64) -> Vec<Send> {
        let mut sends = Vec::new();
        while self.in_flight.len() < self.most {
            let Some(next) = self.buffered.front() else {
                break;
            };
            if !self.fits(self.in_flight_bytes, next.body.len()) {
                break;
            }
            let Some(d) = self.buffered.pop_front() else {
                break;
            };
            self.buffered_bytes -= d.body.len();
            self.needs_room = false;
            if out_of_attempts(d.attempts, d.attempt_base, self.max_attempts) {
                self.ends.push(AttemptEnd {
                    id: d.id.clone(),
                    attempt: Some(d.attempts),
                    via: Via::Socket,
                    sent_at: None,
                    outcome: AttemptOutcome::Disconnected,
                    at,
                    reason: None,
                    result: None,
                    fail: Some(FailReason::MaxAttempts(i64::from(self.max_attempts))),
                });
                continue;
            }
            self.in_flight_bytes += d.body.len();
            let attempt = d.attempts + 1;
            sends.push(Send {
                delivery: d.clone(),
                attempt,
            });
            self.in_flight.insert(
                d.id.clone(),
                InFlight {
                    delivery: d,
                    attempt,
                    sent_at: now,
                    sent_ms: at,
                    retry_at: None,
                },
            );
        }
        sends
    }

    /// Deliveries to be sent again now, in queue order: those unacked for the ack timeout
    /// (an attempt that ends: see [`Window::take_ends`]; the last one allowed gives its
    /// delivery up instead) and those nacked with requeue whose backoff is over.
    pub fn take_due(&mut self, now: Instant, at: i64) -> Vec<Send> {
        let mut due: Vec<_> = self
            .in_flight
            .values()
            .filter(|f| match f.retry_at {
                Some(retry_at) => now >= retry_at,
                None => now.duration_since(f.sent_at) >= self.ack_timeout,
            })
            .map(|f| (f.delivery.queue_seq, f.delivery.id.clone()))
            .collect();
        due.sort_unstable();
        let mut sends = Vec::with_capacity(due.len());
        for (_, id) in due {
            let Some(f) = self.in_flight.get_mut(&id) else {
                continue;
            };
            if f.retry_at.take().is_none() {
                let end = f.end(AttemptOutcome::Timeout, at, self.max_attempts);
                let give_up = end.fail.is_some();
                self.ends.push(end);
                if give_up {
                    self.forget(&id);
                    continue;
                }
            }
            let Some(f) = self.in_flight.get_mut(&id) else {
                continue;
            };
            f.attempt += 1;
            f.sent_at = now;
            f.sent_ms = at;
            sends.push(Send {
                delivery: f.delivery.clone(),
                attempt: f.attempt,
            });
        }
        sends
    }

    /// The registry has routed up to `routed`: if that is past what the window holds while
    /// it believes itself in sync, a push was dropped and none followed to reveal it.
    pub fn check_routed(&mut self, routed: i64) {
        if self.in_sync && routed > self.cursor {
            self.in_sync = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::domain::{
        ids::{AgentId, WebhookId},
        Provider, SealedSecrets,
    };

    const TIMEOUT: Duration = Duration::from_secs(30);

    fn delivery(queue_seq: i64, size: usize) -> PendingDelivery {
        PendingDelivery {
            queue_seq,
            id: DeliveryId::generate(),
            webhook_id: WebhookId::generate(),
            agent_id: AgentId::generate(),
            provider: Provider::Generic,
            event: None,
            received_at: 0,
            verified: true,
            attempts: 0,
            attempt_base: 0,
            headers: "{}".to_owned(),
            body: Bytes::from(vec![b'x'; size]),
            secrets: Arc::new(SealedSecrets {
                signing: Vec::new(),
                previous: None,
                previous_until: None,
                provider: None,
            }),
        }
    }

    fn seqs(sends: &[Send]) -> Vec<i64> {
        sends.iter().map(|s| s.delivery.queue_seq).collect()
    }

    /// A window past its first read of an empty queue: in sync, nothing held.
    fn in_sync_window(most: usize, most_bytes: usize) -> Window {
        let mut w = Window::new(most, most_bytes, TIMEOUT, 0);
        w.start();
        assert!(w.next_read().is_some());
        w.read_done(
            Some(Page {
                deliveries: vec![],
                is_short: true,
            }),
            0,
        );
        w
    }

    #[test]
    fn reads_nothing_until_started() {
        let mut w = Window::new(4, 1 << 20, TIMEOUT, 0);
        assert_eq!(w.next_read(), None);
        w.start();
        let read = w.next_read().unwrap();
        assert_eq!((read.after, read.limit, read.first_always), (0, 4, true));
        // One read at a time.
        assert_eq!(w.next_read(), None);
    }

    #[test]
    fn the_backlog_then_live_pushes_without_gap_or_duplicate() {
        let mut w = Window::new(10, 1 << 20, TIMEOUT, 0);
        w.start();
        w.next_read().unwrap();
        let page = Page {
            deliveries: (1..=3).map(|s| delivery(s, 10)).collect(),
            is_short: true,
        };
        // Position 4 was routed while the read ran: the page cannot be the whole queue.
        w.read_done(Some(page), 4);
        // The push carrying 4 arrives; the window is not in sync, so it reads instead.
        w.push(3, vec![Arc::new(delivery(4, 10))]);
        assert_eq!(seqs(&w.take_sendable(Instant::now(), 0)), [1, 2, 3]);
        let read = w.next_read().unwrap();
        assert_eq!(read.after, 3);
        w.read_done(
            Some(Page {
                deliveries: vec![delivery(4, 10)],
                is_short: true,
            }),
            4,
        );
        // Now in sync: the next pushes are taken as they come, a repeat ignored.
        w.push(
            4,
            vec![Arc::new(delivery(5, 10)), Arc::new(delivery(6, 10))],
        );
        w.push(
            6,
            vec![Arc::new(delivery(6, 10)), Arc::new(delivery(7, 10))],
        );
        assert_eq!(seqs(&w.take_sendable(Instant::now(), 0)), [4, 5, 6, 7]);
        assert_eq!(w.next_read(), None);
    }

    #[test]
    fn a_dropped_push_is_noticed_by_the_next_one_and_read_from_the_store() {
        let mut w = in_sync_window(10, 1 << 20);
        w.push(0, vec![Arc::new(delivery(1, 1))]);
        // The push carrying 2 was dropped; the one carrying 3 says it came after 2.
        w.push(2, vec![Arc::new(delivery(3, 1))]);
        assert_eq!(seqs(&w.take_sendable(Instant::now(), 0)), [1]);
        assert_eq!(w.next_read().unwrap().after, 1);
    }

    #[test]
    fn a_dropped_push_with_none_after_it_is_noticed_by_the_tick() {
        let mut w = in_sync_window(10, 1 << 20);
        assert!(w.is_quiet(0));
        w.check_routed(1);
        assert!(!w.is_quiet(1));
        assert_eq!(w.next_read().unwrap().after, 0);
    }

    #[test]
    fn a_full_buffer_drops_out_of_sync_and_reads_on_once_there_is_room() {
        let mut w = in_sync_window(2, 1 << 20);
        let pushed: Vec<_> = (1..=6).map(|s| Arc::new(delivery(s, 1))).collect();
        w.push(0, pushed);
        // Two windows buffered; the rest is left for a read.
        assert_eq!(w.next_read(), None);
        let sent = w.take_sendable(Instant::now(), 0);
        assert_eq!(seqs(&sent), [1, 2]);
        assert_eq!(w.next_read(), None, "the buffer still holds two");
        for s in &sent {
            w.ack(&s.delivery.id);
        }
        assert_eq!(seqs(&w.take_sendable(Instant::now(), 0)), [3, 4]);
        assert_eq!(w.next_read().unwrap().after, 4);
    }

    #[test]
    fn bytes_bound_the_window_but_one_large_delivery_always_goes() {
        let mut w = in_sync_window(10, 100);
        w.push(
            0,
            vec![Arc::new(delivery(1, 500)), Arc::new(delivery(2, 60))],
        );
        let now = Instant::now();
        assert_eq!(
            seqs(&w.take_sendable(now, 0)),
            [1],
            "alone, though past the bytes"
        );
        // The first filled the buffer's bytes: the second is left for a read, and what
        // that read finds waits until the window has room for its bytes.
        let read = w.next_read().unwrap();
        assert_eq!((read.after, read.max_bytes), (1, 100));
        w.read_done(
            Some(Page {
                deliveries: vec![delivery(2, 60)],
                is_short: true,
            }),
            2,
        );
        assert!(w.take_sendable(now, 0).is_empty());
        let first = w.in_flight.values().next().unwrap().delivery.id.clone();
        w.ack(&first);
        assert_eq!(seqs(&w.take_sendable(now, 0)), [2]);
    }

    #[test]
    fn a_read_that_finds_no_room_waits_for_the_window_to_drain() {
        let mut w = Window::new(2, 100, TIMEOUT, 0);
        w.start();
        w.next_read().unwrap();
        w.read_done(
            Some(Page {
                deliveries: vec![delivery(1, 50)],
                is_short: false,
            }),
            0,
        );
        assert_eq!(seqs(&w.take_sendable(Instant::now(), 0)), [1]);
        let read = w.next_read().unwrap();
        assert_eq!(
            (read.after, read.max_bytes, read.first_always),
            (1, 100, true)
        );
        w.read_done(
            Some(Page {
                deliveries: vec![delivery(2, 60)],
                is_short: false,
            }),
            0,
        );
        // 50 + 60 bytes do not fit the window: the second waits in the buffer.
        assert!(w.take_sendable(Instant::now(), 0).is_empty());
        let read = w.next_read().unwrap();
        assert_eq!(
            (read.after, read.max_bytes, read.first_always),
            (2, 40, false)
        );
        // Nothing fits the 40 bytes left: no more reads until the buffer drains.
        w.read_done(
            Some(Page {
                deliveries: vec![],
                is_short: false,
            }),
            0,
        );
        assert_eq!(w.next_read(), None);
        let id = w.in_flight.values().next().unwrap().delivery.id.clone();
        w.ack(&id);
        assert_eq!(seqs(&w.take_sendable(Instant::now(), 0)), [2]);
        assert!(w.next_read().is_some());
    }

    #[test]
    fn unacked_deliveries_go_again_after_the_timeout_with_the_attempt_counted() {
        let mut w = in_sync_window(10, 1 << 20);
        let mut old = delivery(1, 1);
        old.attempts = 2;
        w.push(0, vec![Arc::new(old), Arc::new(delivery(2, 1))]);
        let sent_at = Instant::now();
        let sent = w.take_sendable(sent_at, 0);
        assert_eq!(sent.iter().map(|s| s.attempt).collect::<Vec<_>>(), [3, 1]);
        assert!(w.take_due(sent_at + TIMEOUT / 2, 0).is_empty());
        w.ack(&sent[1].delivery.id);
        let again = w.take_due(sent_at + TIMEOUT, 0);
        assert_eq!((seqs(&again), again[0].attempt), (vec![1], 4));
        assert_eq!(w.unacked(), 1);
    }

    #[test]
    fn an_ack_of_a_buffered_delivery_removes_it() {
        let mut w = in_sync_window(1, 1 << 20);
        let (a, b) = (Arc::new(delivery(1, 1)), Arc::new(delivery(2, 1)));
        w.push(0, vec![a.clone(), b.clone()]);
        assert_eq!(seqs(&w.take_sendable(Instant::now(), 0)), [1]);
        // Acked from an earlier connection before this one sent it.
        w.ack(&b.id);
        w.ack(&a.id);
        assert!(w.take_sendable(Instant::now(), 0).is_empty());
        assert!(w.is_quiet(2));
    }

    /// A window limited to `max` attempts, its deliveries 1..=n pushed and sent at `t0`.
    fn limited(max: u32, n: i64, t0: Instant) -> (Window, Vec<Send>) {
        let mut w = Window::new(10, 1 << 20, TIMEOUT, max);
        w.start();
        w.next_read();
        w.read_done(
            Some(Page {
                deliveries: vec![],
                is_short: true,
            }),
            0,
        );
        w.push(0, (1..=n).map(|s| Arc::new(delivery(s, 1))).collect());
        let sent = w.take_sendable(t0, 1_000);
        (w, sent)
    }

    #[test]
    fn a_nack_with_requeue_waits_out_its_backoff_and_one_without_gives_up_at_once() {
        let t0 = Instant::now();
        let (mut w, sent) = limited(0, 2, t0);
        let (a, b) = (sent[0].delivery.id.clone(), sent[1].delivery.id.clone());
        let end = w
            .nack(&a, true, Some("busy".into()), None, t0, 1_100)
            .unwrap();
        assert_eq!(
            (end.attempt, end.outcome, end.fail),
            (Some(1), AttemptOutcome::Nacked, None)
        );
        assert_eq!(end.sent_at, Some(1_000));
        // Not before its backoff, however long past the ack timeout that is not.
        assert!(w.take_due(t0 + nack_backoff(1) / 2, 0).is_empty());
        let again = w.take_due(t0 + nack_backoff(1), 2_100);
        assert_eq!((seqs(&again), again[0].attempt), (vec![1], 2));
        assert!(w.take_ends().is_empty(), "the nack was its attempt's end");

        let end = w.nack(&b, false, None, None, t0, 1_200).unwrap();
        assert_eq!(end.fail, Some(FailReason::Nacked));
        assert_eq!(end.failed_reason().as_deref(), Some("nacked"));
        assert_eq!(w.unacked(), 1, "given up, it leaves the window");
        assert!(w
            .take_due(t0 + TIMEOUT * 10, 0)
            .iter()
            .all(|s| s.delivery.id != b));
    }

    #[test]
    fn the_last_attempt_allowed_gives_the_delivery_up_when_it_times_out() {
        let t0 = Instant::now();
        let (mut w, sent) = limited(2, 1, t0);
        assert_eq!(sent[0].attempt, 1);
        let again = w.take_due(t0 + TIMEOUT, 0);
        assert_eq!(again[0].attempt, 2);
        let ends = w.take_ends();
        assert_eq!(
            (ends[0].outcome, ends[0].fail),
            (AttemptOutcome::Timeout, None)
        );
        assert!(w.take_due(t0 + TIMEOUT * 2, 0).is_empty());
        let ends = w.take_ends();
        assert_eq!(ends[0].fail, Some(FailReason::MaxAttempts(2)));
        assert_eq!(ends[0].attempt, Some(2));
        assert_eq!(w.unacked(), 0);
    }

    #[test]
    fn a_delivery_loaded_out_of_attempts_is_given_up_not_sent_unless_redelivered() {
        let mut w = in_sync_window(10, 1 << 20);
        w.max_attempts = 3;
        let mut spent = delivery(1, 1);
        spent.attempts = 3;
        let mut redelivered = delivery(2, 1);
        redelivered.attempts = 3;
        redelivered.attempt_base = 3;
        w.push(0, vec![Arc::new(spent), Arc::new(redelivered)]);
        let sent = w.take_sendable(Instant::now(), 0);
        assert_eq!((seqs(&sent), sent[0].attempt), (vec![2], 4));
        let ends = w.take_ends();
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0].fail, Some(FailReason::MaxAttempts(3)));
    }

    #[test]
    fn a_disconnect_ends_every_attempt_in_flight_and_a_settled_one_is_never_sent() {
        let t0 = Instant::now();
        let (mut w, sent) = limited(1, 3, t0);
        w.settle(std::slice::from_ref(&sent[0].delivery.id));
        let ends = w.disconnected(5_000);
        assert_eq!(
            ends.iter()
                .map(|e| (e.attempt, e.outcome))
                .collect::<Vec<_>>(),
            [(Some(1), AttemptOutcome::Disconnected); 2]
        );
        assert!(ends
            .iter()
            .all(|e| e.fail == Some(FailReason::MaxAttempts(1))));
        assert_eq!(ends[0].id, sent[1].delivery.id, "in queue order");
        assert_eq!(w.unacked(), 0);
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// Commit this many deliveries; the registry's push of them arrives unless dropped.
        Commit { count: usize, dropped: bool },
        /// The session's read, if one was asked for, returns now (at most `limit` rows).
        FinishRead,
        /// The agent acks everything sent so far.
        AckAll,
        /// The session's tick.
        Tick,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (1usize..5, any::<bool>()).prop_map(|(count, dropped)| Step::Commit { count, dropped }),
            Just(Step::FinishRead),
            Just(Step::AckAll),
            Just(Step::Tick),
        ]
    }

    proptest! {
        /// Whatever the interleaving of commits, dropped pushes, reads, acks and ticks,
        /// what the agent is sent is its queue in order, each delivery once, and once
        /// everything has settled nothing is left unsent.
        #[test]
        fn every_delivery_is_sent_once_in_order(
            steps in prop::collection::vec(step(), 1..80),
            most in 1usize..6,
        ) {
            let mut queue: BTreeMap<i64, PendingDelivery> = BTreeMap::new();
            let mut routed = 0i64;
            let mut w = Window::new(most, 1 << 20, TIMEOUT, 0);
            w.start();
            let mut pending_read: Option<Read> = None;
            let mut sent: Vec<i64> = Vec::new();
            let now = Instant::now();
            let run = |w: &mut Window, pending_read: &mut Option<Read>, sent: &mut Vec<i64>| {
                sent.extend(seqs(&w.take_sendable(now, 0)));
                if pending_read.is_none() {
                    *pending_read = w.next_read();
                }
            };
            let read = |queue: &BTreeMap<i64, PendingDelivery>, r: Read| {
                let rows: Vec<_> = queue
                    .range(r.after + 1..)
                    .take(r.limit as usize)
                    .map(|(_, d)| d.clone())
                    .collect();
                let is_short = rows.len() < r.limit as usize;
                Page { deliveries: rows, is_short }
            };
            for s in steps {
                match s {
                    Step::Commit { count, dropped } => {
                        let prev = routed;
                        let batch: Vec<_> = (0..count)
                            .map(|_| {
                                routed += 1;
                                let d = delivery(routed, 1);
                                queue.insert(routed, d.clone());
                                Arc::new(d)
                            })
                            .collect();
                        if !dropped {
                            w.push(prev, batch);
                        }
                    }
                    Step::FinishRead => {
                        if let Some(r) = pending_read.take() {
                            w.read_done(Some(read(&queue, r)), routed);
                        }
                    }
                    Step::AckAll => {
                        for seq in &sent {
                            if let Some(d) = queue.remove(seq) {
                                w.ack(&d.id);
                            }
                        }
                    }
                    Step::Tick => w.check_routed(routed),
                }
                run(&mut w, &mut pending_read, &mut sent);
            }
            // Settle: reads return, the agent acks, the tick runs, until nothing changes.
            for _ in 0..(routed as usize + 4) * 4 {
                if let Some(r) = pending_read.take() {
                    w.read_done(Some(read(&queue, r)), routed);
                }
                for seq in &sent {
                    if let Some(d) = queue.remove(seq) {
                        w.ack(&d.id);
                    }
                }
                w.check_routed(routed);
                run(&mut w, &mut pending_read, &mut sent);
            }
            let expected: Vec<i64> = (1..=routed).collect();
            prop_assert_eq!(sent, expected);
            prop_assert!(w.is_quiet(routed));
        }
    }
}
