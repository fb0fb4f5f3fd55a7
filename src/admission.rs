//! What keeps one sender from holding the hub's connections and file descriptors.
//!
//! Ingest URLs are public, and a request body is read only once its head is in, so a
//! sender can open connections, send a head and a few bytes, and go quiet. Three bounds
//! stop that from starving everyone else:
//! - every body must arrive within a deadline (`--body-timeout`), or it is answered 408
//!   and its connection closed;
//! - one peer address may have only so many bodies being read at once
//!   (`--max-bodies-per-ip`); past that its new requests are answered 429 at once and
//!   their connections closed, so the descriptors are free again;
//! - the server takes at most as many connections as the process's file limit allows,
//!   less a reserve for the database, the listener and the runtime
//!   ([`connection_budget`]): the hub keeps working at the limit instead of failing to
//!   open what it needs.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

/// Bodies being read, per peer address.
pub struct BodySlots {
    per_ip: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// The answer when an address already has its share of bodies being read.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy;

/// One body being read; the slot is given back when this is dropped.
pub struct BodySlot {
    slots: Arc<BodySlots>,
    ip: IpAddr,
}

impl BodySlots {
    /// `per_ip` of 0 turns the bound off.
    pub fn new(per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            per_ip,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a body from `ip`, or `None` when that address already has its share.
    pub fn acquire(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Option<BodySlot>, Busy> {
        let Some(ip) = ip.filter(|_| self.per_ip > 0) else {
            return Ok(None);
        };
        // A poisoned lock only means another request panicked mid-update of a count.
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(ip).or_insert(0);
        if *count >= self.per_ip {
            return Err(Busy);
        }
        *count += 1;
        Ok(Some(BodySlot {
            slots: self.clone(),
            ip,
        }))
    }

    #[cfg(test)]
    fn held(&self, ip: IpAddr) -> usize {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for BodySlot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|e| e.into_inner());
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

    #[test]
    fn an_address_gets_its_share_and_the_slots_come_back() {
        let slots = BodySlots::new(2);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "10.0.0.1".parse().unwrap());
        let first = slots.acquire(Some(a)).unwrap();
        let second = slots.acquire(Some(a)).unwrap();
        assert!(slots.acquire(Some(a)).is_err());
        // Another address is not held back by the first.
        assert!(slots.acquire(Some(b)).unwrap().is_some());
        drop(first);
        assert!(slots.acquire(Some(a)).unwrap().is_some());
        drop(second);
        assert_eq!(slots.held(a), 0);
    }

    #[test]
    fn zero_turns_the_bound_off() {
        let slots = BodySlots::new(0);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let kept: Vec<_> = (0..1000).map(|_| slots.acquire(Some(a)).unwrap()).collect();
        assert!(kept.iter().all(Option::is_none));
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
