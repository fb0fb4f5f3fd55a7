//! The messages between the delivery writer, the registry and agent sessions.

use std::{
    collections::HashSet,
    sync::{atomic::AtomicI64, Arc},
};

use actix::{Addr, Message};

use super::session::AgentSession;
use crate::{ids::AgentId, store::PendingDelivery};

/// Writer → registry: deliveries just committed (or requeued), in queue order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Route(pub Vec<Arc<PendingDelivery>>);

/// Session → registry: this agent is online on this session.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct Register {
    pub agent_id: AgentId,
    pub session: Addr<AgentSession>,
    /// The highest queue position routed to this session; written by the registry only.
    pub routed: Arc<AtomicI64>,
}

/// Session → registry: this session has ended. Ignored if a newer one has replaced it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister {
    pub agent_id: AgentId,
    pub generation: u64,
}

/// Which agents have a live session.
#[derive(Message)]
#[rtype(result = "HashSet<AgentId>")]
pub struct ConnectedAgents;

/// Close every session with 1001 (going away); the hub is shutting down.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseAll;

/// Registry → session: deliveries for this agent, in queue order. `prev` is the queue
/// position routed to this session just before the first of them, so that the session can
/// tell whether it missed any (then it reads them from the store instead).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Push {
    pub prev: i64,
    pub deliveries: Vec<Arc<PendingDelivery>>,
}

/// Registry → session: close with this code and reason.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}
