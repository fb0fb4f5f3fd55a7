//! The registry: which agents are online, and where each committed delivery goes.
//!
//! It is the one place that decides routing. It never blocks on a session: pushes use
//! `try_send`, and a push that does not fit a session's mailbox is dropped on purpose; the
//! session notices the gap (see [`Push::prev`]) and reads the missing deliveries from the
//! store, which is the queue of record.
//!
//! It also wakes the pull side: an agent with no socket may have `next_events` calls
//! waiting ([`Watch`]); a delivery routed to it ends their wait.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
};

use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::{
    domain::{
        ids::{AgentId, DeliveryId},
        PendingDelivery,
    },
    metrics::Metrics,
    protocol,
};

/// How long a revocation is remembered against connections still registering.
const REVOKED_MEMORY: Duration = Duration::from_secs(60);

struct Online {
    push: Recipient<Push>,
    close: Recipient<Close>,
    generation: u64,
    routed: Arc<AtomicI64>,
}

#[derive(Default)]
pub struct Registry {
    online: HashMap<AgentId, Online>,
    /// When each agent's credentials were last revoked: a connection authenticated
    /// before that, which registers only after it, is refused rather than kept alive.
    revoked: HashMap<AgentId, Instant>,
    next_generation: u64,
    metrics: Arc<Metrics>,
    /// Pull calls waiting for a delivery, per agent without a socket.
    watching: HashMap<AgentId, Vec<oneshot::Sender<()>>>,
}

impl Registry {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            ..Self::default()
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The writer routes every committed batch here; a deep mailbox absorbs bursts.
        ctx.set_mailbox_capacity(4096);
    }
}

impl Handler<Register> for Registry {
    type Result = Option<u64>;

    fn handle(&mut self, msg: Register, _: &mut Context<Self>) -> Option<u64> {
        if self
            .revoked
            .get(&msg.agent_id)
            .is_some_and(|at| *at >= msg.authenticated_at)
        {
            return None;
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        // Pull calls waiting for this agent end: its deliveries now go to the socket.
        for wake in self.watching.remove(&msg.agent_id).unwrap_or_default() {
            let _ = wake.send(());
        }
        let previous = self.online.insert(
            msg.agent_id,
            Online {
                push: msg.push,
                close: msg.close,
                generation,
                routed: msg.routed,
            },
        );
        if let Some(old) = previous {
            old.close.do_send(Close {
                code: protocol::CLOSE_REPLACED,
                reason: "replaced by a newer connection for this agent",
            });
        }
        self.metrics.connected_agents.set(self.online.len() as i64);
        Some(generation)
    }
}

impl Handler<Revoke> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Revoke, _: &mut Context<Self>) {
        let now = Instant::now();
        // Authenticating and registering take milliseconds; a minute covers any
        // connection caught between the two, and bounds the map.
        self.revoked
            .retain(|_, at| now.duration_since(*at) < REVOKED_MEMORY);
        self.revoked.insert(msg.agent_id.clone(), now);
        // Pull calls waiting with the old token wake, find it revoked, and end.
        for wake in self.watching.remove(&msg.agent_id).unwrap_or_default() {
            let _ = wake.send(());
        }
        if let Some(online) = self.online.remove(&msg.agent_id) {
            online.close.do_send(Close {
                code: protocol::CLOSE_REVOKED,
                reason: msg.reason,
            });
            self.metrics.connected_agents.set(self.online.len() as i64);
        }
    }
}

impl Handler<Unregister> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Unregister, _: &mut Context<Self>) {
        if let Some(current) = self.online.get(&msg.agent_id) {
            if current.generation == msg.generation {
                self.online.remove(&msg.agent_id);
                self.metrics.connected_agents.set(self.online.len() as i64);
            }
        }
    }
}

impl Handler<ConnectedAgents> for Registry {
    type Result = MessageResult<ConnectedAgents>;

    fn handle(&mut self, _: ConnectedAgents, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.online.keys().cloned().collect::<HashSet<_>>())
    }
}

impl Handler<Route> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Route, _: &mut Context<Self>) {
        // Group per agent, keeping queue order, so that each session gets one message.
        let mut per_agent: HashMap<&AgentId, Push> = HashMap::new();
        let wake = |agent_id: &AgentId,
                    watching: &mut HashMap<AgentId, Vec<oneshot::Sender<()>>>| {
            if let Some(waiting) = watching.remove(agent_id) {
                for wake in waiting {
                    let _ = wake.send(());
                }
            }
        };
        for d in &msg.deliveries {
            if self.online.contains_key(&d.agent_id) {
                let push = per_agent.entry(&d.agent_id).or_default();
                push.upto = d.queue_seq;
                push.deliveries.push(d.clone());
            } else {
                wake(&d.agent_id, &mut self.watching);
            }
        }
        for (agent_id, upto) in &msg.moved {
            if self.online.contains_key(agent_id) {
                let push = per_agent.entry(agent_id).or_default();
                push.upto = push.upto.max(*upto);
            } else {
                wake(agent_id, &mut self.watching);
            }
        }
        for (agent_id, id) in &msg.settled {
            if self.online.contains_key(agent_id) {
                per_agent
                    .entry(agent_id)
                    .or_default()
                    .settled
                    .push(id.clone());
            }
        }
        for (agent_id, mut push) in per_agent {
            let Some(online) = self.online.get(agent_id) else {
                continue;
            };
            if push.upto > 0 {
                push.prev = online.routed.fetch_max(push.upto, Ordering::AcqRel);
            } else {
                push.prev = online.routed.load(Ordering::Acquire);
            }
            // A full mailbox drops this push; the session sees `routed` ahead of what it
            // has and reads the rest from the store. (A dropped `settled` costs a resend
            // of a delivery the store no longer counts as pending: its ack is ignored.)
            let _ = online.push.try_send(push);
        }
    }
}

impl Handler<Watch> for Registry {
    type Result = MessageResult<Watch>;

    fn handle(&mut self, msg: Watch, _: &mut Context<Self>) -> Self::Result {
        if self.online.contains_key(&msg.agent_id) {
            return MessageResult(Watching::Online);
        }
        let (wake, woken) = oneshot::channel();
        let waiting = self.watching.entry(msg.agent_id).or_default();
        // Calls that stopped waiting leave their senders behind; dropping them here bounds
        // each agent's list by the calls actually waiting.
        waiting.retain(|w| !w.is_closed());
        waiting.push(wake);
        MessageResult(Watching::Waiting(woken))
    }
}

impl Handler<CloseAll> for Registry {
    type Result = ();

    fn handle(&mut self, _: CloseAll, _: &mut Context<Self>) {
        for online in self.online.values() {
            online.close.do_send(Close {
                code: 1001,
                reason: "the hub is shutting down",
            });
        }
    }
}

// The messages between the delivery writer, the registry and agent sessions.

/// Writer → registry: what a commit changed in agents' queues.
#[derive(Message, Default)]
#[rtype(result = "()")]
pub struct Route {
    /// Deliveries just committed (or requeued), in queue order.
    pub deliveries: Vec<Arc<PendingDelivery>>,
    /// Deliveries queued again in bulk, too many to carry: each agent's last new queue
    /// position, so that its session reads them from the store.
    pub moved: Vec<(AgentId, i64)>,
    /// Deliveries no longer pending (discarded): a session holding one stops sending it.
    pub settled: Vec<(AgentId, DeliveryId)>,
}

impl Route {
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty() && self.moved.is_empty() && self.settled.is_empty()
    }
}

/// Session → registry: this agent is online on this session. `None` in answer: its
/// credentials were revoked after it authenticated.
#[derive(Message)]
#[rtype(result = "Option<u64>")]
pub struct Register {
    pub agent_id: AgentId,
    /// When the connection's token was checked.
    pub authenticated_at: Instant,
    /// Where this agent's deliveries go. The registry names what a session receives,
    /// never the session's type, so the two do not depend on each other.
    pub push: Recipient<Push>,
    pub close: Recipient<Close>,
    /// The highest queue position routed to this session; written by the registry only.
    pub routed: Arc<AtomicI64>,
}

/// Service → registry: the agent's token was rotated or the agent deleted: close its
/// socket with 4001, refuse any connection that authenticated before now, and wake its
/// waiting pull calls (which then check their token again).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Revoke {
    pub agent_id: AgentId,
    pub reason: &'static str,
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

/// Pull side → registry: wake me at the next delivery routed to this agent, unless the
/// agent has a socket (its deliveries go there, and the pull side must not take them).
#[derive(Message)]
#[rtype(result = "Watching")]
pub struct Watch {
    pub agent_id: AgentId,
}

pub enum Watching {
    /// The agent has a live socket.
    Online,
    /// Resolves at the next delivery routed to the agent (or closes if the registry stops).
    Waiting(oneshot::Receiver<()>),
}

/// Close every session with 1001 (going away); the hub is shutting down.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseAll;

/// Registry → session: deliveries for this agent, in queue order. `prev` is the queue
/// position routed to this session just before the first of them, so that the session can
/// tell whether it missed any (then it reads them from the store instead); `upto`, the
/// last position routed with this push (beyond the deliveries when some were queued again
/// in bulk, to be read from the store).
#[derive(Message, Default)]
#[rtype(result = "()")]
pub struct Push {
    pub prev: i64,
    pub upto: i64,
    pub deliveries: Vec<Arc<PendingDelivery>>,
    /// Deliveries no longer pending, to stop sending.
    pub settled: Vec<DeliveryId>,
}

/// Registry → session: close with this code and reason.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Stands in for a session: keeps the close codes it is sent.
    struct Closes(Arc<Mutex<Vec<u16>>>);

    impl Actor for Closes {
        type Context = Context<Self>;
    }

    impl Handler<Push> for Closes {
        type Result = ();
        fn handle(&mut self, _: Push, _: &mut Context<Self>) {}
    }

    impl Handler<Close> for Closes {
        type Result = ();
        fn handle(&mut self, msg: Close, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(msg.code);
        }
    }

    fn register(agent: &AgentId, session: &Addr<Closes>, authenticated_at: Instant) -> Register {
        Register {
            agent_id: agent.clone(),
            authenticated_at,
            push: session.clone().recipient(),
            close: session.clone().recipient(),
            routed: Arc::default(),
        }
    }

    #[actix_rt::test]
    async fn a_revocation_closes_the_session_and_refuses_a_connection_authenticated_before_it() {
        let registry = Registry::new(Arc::new(Metrics::new())).start();
        let agent = AgentId::generate();
        let closes = Arc::new(Mutex::new(Vec::new()));
        let session = Closes(closes.clone()).start();

        let before = Instant::now();
        assert!(registry
            .send(register(&agent, &session, before))
            .await
            .unwrap()
            .is_some());
        // A connection that authenticated with the old token but has not registered yet.
        let late = Instant::now();
        registry
            .send(Revoke {
                agent_id: agent.clone(),
                reason: "token rotated",
            })
            .await
            .unwrap();
        assert_eq!(
            registry
                .send(register(&agent, &session, late))
                .await
                .unwrap(),
            None,
            "a connection authenticated before the revocation was let in"
        );
        // One authenticated after it, with the new token, is.
        let fresh = Instant::now();
        assert!(registry
            .send(register(&agent, &session, fresh))
            .await
            .unwrap()
            .is_some());
        assert!(registry
            .send(ConnectedAgents)
            .await
            .unwrap()
            .contains(&agent));
        // Let the close reach the session.
        registry.send(ConnectedAgents).await.unwrap();
        actix_rt::task::yield_now().await;
        assert_eq!(*closes.lock().unwrap(), vec![protocol::CLOSE_REVOKED]);
    }
}
