//! What keeps senders from holding the hub's connections, descriptors and memory.
//!
//! Ingest URLs are public, and a request body is read only once its head is in, so a
//! sender can open connections, send a head and part of a body, and go quiet. These
//! bounds stop that from starving everyone else:
//! - every body must arrive within a deadline (`--body-timeout`), or it is answered 408
//!   and its connection closed;
//! - one peer address may have only so many bodies being read at once
//!   (`--max-bodies-per-ip`); past that its new requests are answered 429 at once and
//!   their connections closed, so the descriptors are free again;
//! - all addresses together may have only so many bodies being read, and hold only so
//!   many bytes of them (`--max-body-memory`): past either, the body that has been
//!   arriving longest is given up (408, its connection closed) to make room. A sender
//!   that sends its body at once is never the oldest, so many addresses each holding
//!   half-sent bodies cannot keep a real sender out, nor fill the memory;
//! - one peer address may hold only so many connections (`--max-connections-per-ip`),
//!   idle or not: one past it is shut as soon as it is accepted;
//! - the server takes at most as many connections as the process's file limit allows,
//!   less a reserve for the database, the listener and the runtime
//!   ([`connection_budget`]): the hub keeps working at the limit instead of failing to
//!   open what it needs.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio_util::sync::CancellationToken;

/// Bodies being read: per peer address, and all together with the bytes they hold.
pub struct BodySlots {
    per_ip: usize,
    most: usize,
    most_bytes: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    per_ip: HashMap<IpAddr, usize>,
    /// The bodies that can still be given up, oldest first (ids are handed out in order).
    open: BTreeMap<u64, Open>,
    next_id: u64,
    bytes: usize,
}

struct Open {
    bytes: usize,
    give_up: CancellationToken,
}

/// The answer when an address already has its share of bodies being read.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy;

/// One body being read; the slot is given back when this is dropped.
pub struct BodySlot {
    slots: Arc<BodySlots>,
    ip: Option<IpAddr>,
    id: u64,
    /// Cancelled when this body is given up to make room for a newer one.
    pub given_up: CancellationToken,
}

impl BodySlots {
    /// `per_ip` of 0 turns the per-address bound off; `most` and `most_bytes` bound all
    /// bodies together.
    pub fn new(per_ip: usize, most: usize, most_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            per_ip,
            most: most.max(1),
            most_bytes,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another request panicked mid-update of counts.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a body from `ip`, or `Busy` when that address already has its share.
    /// When all slots are taken, the oldest body still arriving is given up for this one.
    pub fn acquire(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<BodySlot, Busy> {
        let mut state = self.state();
        let ip = ip.filter(|_| self.per_ip > 0);
        if let Some(ip) = ip {
            let count = state.per_ip.entry(ip).or_insert(0);
            if *count >= self.per_ip {
                return Err(Busy);
            }
            *count += 1;
        }
        while state.open.len() >= self.most {
            state.give_up_oldest();
        }
        let id = state.next_id;
        state.next_id += 1;
        let given_up = CancellationToken::new();
        state.open.insert(
            id,
            Open {
                bytes: 0,
                give_up: given_up.clone(),
            },
        );
        Ok(BodySlot {
            slots: self.clone(),
            ip,
            id,
            given_up,
        })
    }

    #[cfg(test)]
    fn held(&self, ip: IpAddr) -> usize {
        self.state().per_ip.get(&ip).copied().unwrap_or(0)
    }
}

impl State {
    /// Gives up the body that has been arriving longest: it answers 408 and lets go of its
    /// bytes and its slot when it next runs.
    fn give_up_oldest(&mut self) {
        if let Some((_, oldest)) = self.open.pop_first() {
            self.bytes -= oldest.bytes;
            oldest.give_up.cancel();
        }
    }
}

impl BodySlot {
    /// Counts `n` more bytes of this body; past the budget for all bodies, the oldest
    /// others are given up until these fit. This body has arrived since they started.
    pub fn add_bytes(&self, n: usize) {
        let mut state = self.slots.state();
        let Some(mine) = state.open.get_mut(&self.id) else {
            // Given up already: its read is about to end.
            return;
        };
        mine.bytes += n;
        state.bytes += n;
        while state.bytes > self.slots.most_bytes
            && state
                .open
                .first_key_value()
                .is_some_and(|(id, _)| *id != self.id)
        {
            state.give_up_oldest();
        }
    }
}

impl Drop for BodySlot {
    fn drop(&mut self) {
        let mut state = self.slots.state();
        if let Some(open) = state.open.remove(&self.id) {
            state.bytes -= open.bytes;
        }
        if let Some(ip) = self.ip {
            if let Some(count) = state.per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    state.per_ip.remove(&ip);
                }
            }
        }
    }
}

/// Open connections per peer address.
pub struct ConnectionsPerIp {
    most: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection, counted against its address until it is dropped with the
/// connection.
pub struct Connection {
    counts: Arc<ConnectionsPerIp>,
    ip: IpAddr,
}

impl ConnectionsPerIp {
    /// `most` of 0 turns the bound off.
    pub fn new(most: usize) -> Arc<Self> {
        Arc::new(Self {
            most,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a new connection from `ip`; `None` when that address already has its share
    /// (or the bound is off, when there is nothing to count).
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Result<Option<Connection>, Busy> {
        if self.most == 0 {
            return Ok(None);
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(ip).or_insert(0);
        if *count >= self.most {
            return Err(Busy);
        }
        *count += 1;
        Ok(Some(Connection {
            counts: self.clone(),
            ip,
        }))
    }

    /// The server's connect hook: counts the connection, and shuts it at once when its
    /// address has its share. The count lives in the connection's data, so it ends when
    /// the connection does.
    pub fn on_connect(
        self: &Arc<Self>,
        io: &dyn std::any::Any,
        data: &mut actix_web::dev::Extensions,
    ) {
        let Some(stream) = io.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        let Ok(peer) = stream.peer_addr() else {
            return;
        };
        match self.open(peer.ip()) {
            Ok(Some(connection)) => {
                data.insert(Arc::new(connection));
            }
            Ok(None) => {}
            Err(Busy) => {
                tracing::debug!(peer = %peer.ip(), "connection over the address's share; shutting it");
                let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut held = self.counts.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// Descriptors kept back from connections: SQLite's files (a database, its WAL and shared
/// memory for each of half a dozen connections: about 20), the listener, each worker's
/// event loop, the key file, logs; with room to spare. A fixed number, not a share: what
/// the hub needs besides connections does not grow with the limit.
const RESERVED_FDS: u64 = 128;

/// How many connections each of `workers` may take so that the process stays below its
/// open-file limit (`None`: the limit is unknown, keep the server's default).
pub fn connection_budget(file_limit: Option<u64>, workers: usize) -> Option<usize> {
    let limit = file_limit?;
    let total = limit.saturating_sub(RESERVED_FDS).max(workers as u64);
    usize::try_from(total / workers.max(1) as u64).ok()
}

/// The process's soft limit on open files, from `/proc/self/limits` (Linux).
pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_address_gets_its_share_and_the_slots_come_back() {
        let slots = BodySlots::new(2, 100, 1 << 20);
        let first = slots.acquire(ip("127.0.0.2")).unwrap();
        let second = slots.acquire(ip("127.0.0.2")).unwrap();
        assert!(slots.acquire(ip("127.0.0.2")).is_err());
        // Another address is not held back by the first.
        assert!(slots.acquire(ip("10.0.0.1")).is_ok());
        drop(first);
        assert!(slots.acquire(ip("127.0.0.2")).is_ok());
        drop(second);
        assert_eq!(slots.held(ip("127.0.0.2").unwrap()), 0);
    }

    #[test]
    fn zero_turns_the_per_address_bound_off() {
        let slots = BodySlots::new(0, 10_000, 1 << 20);
        let kept: Vec<_> = (0..1000).map(|_| slots.acquire(ip("127.0.0.1"))).collect();
        assert!(kept.iter().all(Result::is_ok));
    }

    #[test]
    fn past_the_bound_for_all_the_oldest_body_is_given_up() {
        let slots = BodySlots::new(10, 3, 1 << 20);
        let held: Vec<_> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
            .iter()
            .map(|a| slots.acquire(ip(a)).unwrap())
            .collect();
        let newest = slots.acquire(ip("10.0.0.4")).unwrap();
        assert!(held[0].given_up.is_cancelled());
        assert!(!held[1].given_up.is_cancelled() && !newest.given_up.is_cancelled());
        // The one given up still counts against its address until its read ends.
        assert_eq!(slots.held(ip("10.0.0.1").unwrap()), 1);
        drop(held);
        assert_eq!(slots.held(ip("10.0.0.1").unwrap()), 0);
    }

    #[test]
    fn past_the_byte_budget_older_bodies_make_room() {
        let slots = BodySlots::new(10, 100, 1000);
        let old = slots.acquire(ip("10.0.0.1")).unwrap();
        let middle = slots.acquire(ip("10.0.0.2")).unwrap();
        let new = slots.acquire(ip("10.0.0.3")).unwrap();
        old.add_bytes(600);
        middle.add_bytes(300);
        new.add_bytes(50);
        assert!(!old.given_up.is_cancelled());
        new.add_bytes(200);
        assert!(old.given_up.is_cancelled());
        assert!(!middle.given_up.is_cancelled() && !new.given_up.is_cancelled());
        // A body alone over the budget is not given up for itself.
        let alone = BodySlots::new(10, 100, 10);
        let slot = alone.acquire(ip("10.0.0.1")).unwrap();
        slot.add_bytes(100);
        assert!(!slot.given_up.is_cancelled());
    }

    #[test]
    fn connections_of_an_address_are_counted_until_they_end() {
        let counts = ConnectionsPerIp::new(2);
        let a = ip("10.0.0.1").unwrap();
        let first = counts.open(a).unwrap();
        let _second = counts.open(a).unwrap();
        assert!(counts.open(a).is_err());
        assert!(counts.open(ip("10.0.0.2").unwrap()).is_ok());
        drop(first);
        assert!(counts.open(a).is_ok());
        assert!(ConnectionsPerIp::new(0).open(a).unwrap().is_none());
    }

    #[test]
    fn the_budget_leaves_a_reserve_below_the_file_limit() {
        assert_eq!(connection_budget(None, 2), None);
        assert_eq!(connection_budget(Some(256), 2), Some(64));
        assert_eq!(connection_budget(Some(20_000), 2), Some(9_936));
        // Even at a tiny limit every worker takes a connection.
        assert_eq!(connection_budget(Some(10), 4), Some(1));
    }

    #[test]
    fn the_file_limit_is_read_from_proc() {
        if std::path::Path::new("/proc/self/limits").exists() {
            assert!(open_file_limit().is_some_and(|n| n > 0));
        }
    }
}
