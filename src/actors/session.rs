//! `AgentSession`: one actor per connected agent socket.
//!
//! It owns the agent's window of unacked deliveries and sends in queue order. The store is
//! the queue of record: the session reads the backlog from it page by page, and takes live
//! deliveries from the registry only while it knows it has everything before them (it is
//! "in sync"). When it cannot be sure — a push was dropped, its buffer was full, it just
//! connected — it reads from the store again, from the last position it has. So the seam
//! between backlog and live has no gap, no duplicate and no reordering, and a slow agent
//! holds at most two windows of deliveries in memory.
//!
//! The socket itself is written by one task fed through a bounded channel, so frames leave
//! in the order the actor produced them and a stuck peer cannot grow memory: an agent
//! that stops reading until that channel is full is dropped.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use actix::prelude::*;
use actix_http::ws::{CloseCode, CloseReason, Message as WsMessage};
use tokio::sync::mpsc;

use super::{
    messages::{Close, Push, Register, Unregister},
    wire::{FrameReader, Outbound, Violation},
};
use crate::{
    clock,
    ids::{AgentId, DeliveryId},
    protocol::{self, Inbound},
    providers::Signer,
    service::Hub,
    store::{OwnedAgent, PendingDelivery},
};

/// The shortest wait between two ticks.
const MIN_TICK: Duration = Duration::from_millis(50);

/// Socket → session: one message from the agent, the end of its stream, or the
/// violation that fails the connection.
#[derive(Message)]
#[rtype(result = "()")]
pub enum FromSocket {
    Frame(WsMessage),
    Ended,
    Violation(Violation),
}

/// Session → itself: a finished tool call's `result` frame, to be written in order with
/// the rest and to free its slot among the calls in flight.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallResult(pub String);

/// Tool calls one socket may have running at once; more are refused until one finishes,
/// so an agent that pipelines calls cannot grow the hub's memory without bound.
pub const MAX_CALLS_IN_FLIGHT: usize = 16;

struct InFlight {
    delivery: Arc<PendingDelivery>,
    attempt: i64,
    sent_at: Instant,
}

pub struct AgentSession {
    /// Shared, not copied: one pointer per session instead of a clone of every handle.
    hub: Arc<Hub>,
    agent: OwnedAgent,
    /// Frames to the socket writer task.
    out: mpsc::Sender<Outbound>,
    window: usize,
    /// Body bytes the window may hold, and so may the buffer: a few large deliveries must
    /// not turn a window counted in deliveries into gigabytes. One delivery always fits,
    /// however large, or it could never be sent.
    window_bytes: usize,
    ack_timeout: Duration,
    heartbeat: Duration,
    client_timeout: Duration,
    /// Set by the registry to the last queue position it routed here.
    routed: Arc<AtomicI64>,
    generation: Option<u64>,
    /// The highest queue position this session has taken (sent or buffered).
    cursor: i64,
    /// Everything of this agent up to `cursor` is taken, and every push since arrived.
    in_sync: bool,
    fetching: bool,
    /// Taken, not yet sent: at most about two windows.
    buffered: VecDeque<Arc<PendingDelivery>>,
    buffered_bytes: usize,
    /// The last read found the next delivery too large for the buffer's room: read again
    /// only once some of the buffer has gone out, or the read would find the same.
    needs_room: bool,
    in_flight: HashMap<DeliveryId, InFlight>,
    in_flight_bytes: usize,
    /// Each webhook's signing keys, opened once for this session's frames.
    signer: Signer,
    /// Tool calls running, at most [`MAX_CALLS_IN_FLIGHT`].
    calls: usize,
    last_heard: Instant,
    last_ping: Instant,
    /// The next tick, and whether it is the long one of a quiet session.
    next_tick: Option<(SpawnHandle, bool)>,
}

impl AgentSession {
    pub fn new(hub: Arc<Hub>, agent: OwnedAgent, out: mpsc::Sender<Outbound>) -> Self {
        let config = hub.config.clone();
        Self {
            hub,
            agent,
            out,
            window: config.window as usize,
            window_bytes: usize::try_from(config.window_bytes).unwrap_or(usize::MAX),
            ack_timeout: config.ack_timeout,
            heartbeat: config.heartbeat,
            client_timeout: config.client_timeout,
            routed: Arc::new(AtomicI64::new(0)),
            generation: None,
            cursor: 0,
            in_sync: false,
            // No read until registered and past the writer barrier (see `started`).
            fetching: true,
            buffered: VecDeque::new(),
            buffered_bytes: 0,
            needs_room: false,
            in_flight: HashMap::new(),
            in_flight_bytes: 0,
            signer: Signer::default(),
            calls: 0,
            last_heard: Instant::now(),
            last_ping: Instant::now(),
            next_tick: None,
        }
    }

    fn agent_id(&self) -> &AgentId {
        self.agent.id()
    }

    /// Queues a frame for the socket. A full channel means the agent stopped reading.
    fn send_frame(&mut self, frame: Outbound, ctx: &mut Context<Self>) -> bool {
        match self.out.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(agent_id = %self.agent_id(), "agent is not reading its socket; dropping it");
                ctx.stop();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                ctx.stop();
                false
            }
        }
    }

    fn send_delivery(
        &mut self,
        d: &PendingDelivery,
        attempt: i64,
        ctx: &mut Context<Self>,
    ) -> bool {
        let signature = self.signer.sign(&self.hub.key, d);
        let frame = protocol::delivery_frame(d, attempt, signature.as_ref());
        let handed = self.send_frame(Outbound::Text(frame), ctx);
        if handed {
            self.hub
                .metrics
                .observe_delivered(d.received_at, clock::now_ms());
        }
        handed
    }

    /// Whether `len` more bytes fit beside `held`: always when nothing is held.
    fn fits(&self, held: usize, len: usize) -> bool {
        held == 0 || held + len <= self.window_bytes
    }

    fn buffer(&mut self, d: Arc<PendingDelivery>) {
        self.buffered_bytes += d.body.len();
        self.buffered.push_back(d);
    }

    /// Whether the buffer has all it may hold: count and bytes both bound it.
    fn buffer_full(&self, most: usize) -> bool {
        self.needs_room || self.buffered.len() >= most || self.buffered_bytes >= self.window_bytes
    }

    /// Moves buffered deliveries into the window, in order, as far as its count and its
    /// bytes allow.
    fn fill_window(&mut self, ctx: &mut Context<Self>) {
        let mut sent = Vec::new();
        while self.in_flight.len() < self.window {
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
            self.in_flight_bytes += d.body.len();
            self.needs_room = false;
            let attempt = d.attempts + 1;
            if !self.send_delivery(&d, attempt, ctx) {
                return;
            }
            sent.push(d.id.clone());
            self.in_flight.insert(
                d.id.clone(),
                InFlight {
                    delivery: d,
                    attempt,
                    sent_at: Instant::now(),
                },
            );
        }
        self.hub.writer.sent(self.agent_id().clone(), sent);
        self.maybe_fetch(ctx);
        self.schedule_tick(ctx);
    }

    /// Reads the next page of the queue from the store when out of sync and there is room.
    fn maybe_fetch(&mut self, ctx: &mut Context<Self>) {
        if self.fetching || self.in_sync || self.buffer_full(self.window) {
            return;
        }
        self.fetching = true;
        let store = self.hub.store.clone();
        let agent_id = self.agent_id().clone();
        let after = self.cursor;
        let limit = self.window as u32;
        let max_bytes = self.window_bytes.saturating_sub(self.buffered_bytes);
        let first_always = self.buffered.is_empty();
        let fut = async move {
            store
                .pending_page(&agent_id, after, limit, max_bytes, first_always)
                .await
        };
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.fetching = false;
            match result {
                Ok(page) => {
                    let short = page.is_short;
                    // With nothing buffered the first delivery always comes: an empty page
                    // then only means the queue was empty when read.
                    act.needs_room =
                        page.deliveries.is_empty() && !short && !act.buffered.is_empty();
                    for d in page.deliveries {
                        if d.queue_seq > act.cursor {
                            act.cursor = d.queue_seq;
                            act.buffer(Arc::new(d));
                        }
                    }
                    // Caught up only if nothing was routed here beyond what we now hold;
                    // otherwise a delivery committed during the read may be missing.
                    if short && act.routed.load(Ordering::Acquire) <= act.cursor {
                        act.in_sync = true;
                    }
                    act.fill_window(ctx);
                }
                // The next tick tries again.
                Err(e) => tracing::error!(agent_id = %act.agent_id(), error = %e, "reading the backlog failed"),
            }
        }));
        self.schedule_tick(ctx);
    }

    fn on_push(&mut self, push: Push, ctx: &mut Context<Self>) {
        if !self.in_sync || push.prev > self.cursor {
            // Either we are still reading the store, which will have these, or a push was
            // dropped on the way and we must read what it carried.
            self.in_sync = false;
            self.maybe_fetch(ctx);
            return;
        }
        for d in push.deliveries {
            if d.queue_seq <= self.cursor {
                continue;
            }
            if self.buffer_full(2 * self.window) {
                self.in_sync = false;
                break;
            }
            self.cursor = d.queue_seq;
            self.buffer(d);
        }
        self.fill_window(ctx);
    }

    fn on_ack(&mut self, delivery_id: &str, ctx: &mut Context<Self>) {
        let Some(id) = DeliveryId::parse(delivery_id) else {
            let frame = protocol::error_frame("invalid_frame", "`deliveryId` is not a delivery id");
            self.send_frame(Outbound::Text(frame), ctx);
            return;
        };
        // Acks of deliveries sent on an earlier connection count too.
        if let Some(f) = self.in_flight.remove(&id) {
            self.in_flight_bytes -= f.delivery.body.len();
        }
        if let Some(i) = self.buffered.iter().position(|d| d.id == id) {
            if let Some(d) = self.buffered.remove(i) {
                self.buffered_bytes -= d.body.len();
                self.needs_room = false;
            }
        }
        self.hub.writer.ack(self.agent_id().clone(), id);
        self.fill_window(ctx);
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        match serde_json::from_str::<Inbound>(text) {
            Ok(Inbound::Ack { delivery_id }) => self.on_ack(&delivery_id, ctx),
            Ok(Inbound::Call { id, tool, args }) => self.on_call(id, tool, args, ctx),
            Err(e) => {
                let frame = protocol::error_frame(
                    "invalid_frame",
                    &format!("expected an `ack` or `call` frame: {e}"),
                );
                self.send_frame(Outbound::Text(frame), ctx);
            }
        }
    }

    /// Tool calls run beside deliveries: the call is awaited off the actor, and its
    /// result comes back as a message so frames stay in one ordered stream.
    fn on_call(
        &mut self,
        id: String,
        tool: String,
        args: serde_json::Value,
        ctx: &mut Context<Self>,
    ) {
        if self.calls >= MAX_CALLS_IN_FLIGHT {
            let refused = crate::error::ErrorDetail {
                code: "rate_limited",
                message: format!(
                    "{MAX_CALLS_IN_FLIGHT} calls are already running; wait for a result before the next call"
                ),
                field: None,
            };
            let frame = protocol::result_frame(&id, Err(refused));
            self.send_frame(Outbound::Text(frame), ctx);
            return;
        }
        self.calls += 1;
        let hub = self.hub.clone();
        let caller = crate::auth::Caller::Agent(self.agent.clone());
        let me = ctx.address();
        actix::spawn(async move {
            let outcome = crate::service::tools::call(&hub, &caller, &tool, args).await;
            let frame = protocol::result_frame(&id, outcome);
            let _ = me.send(CallResult(frame)).await;
        });
    }

    /// Nothing sent and unacked, nothing waiting, nothing missing: only the ping and the
    /// silence check are due, and they need no tick in between.
    fn is_quiet(&self) -> bool {
        self.in_flight.is_empty()
            && self.buffered.is_empty()
            && self.in_sync
            && !self.fetching
            && self.routed.load(Ordering::Acquire) <= self.cursor
    }

    /// Keeps one tick scheduled: every second or so while deliveries are in flight or the
    /// queue is being read (resends, retries), and while quiet only when the next ping or
    /// the silence check is due. Twenty thousand idle sockets ticking every second cost a
    /// tenth of a core; this way each wakes once per heartbeat.
    fn schedule_tick(&mut self, ctx: &mut Context<Self>) {
        let quiet = self.is_quiet();
        if let Some((handle, was_quiet)) = self.next_tick {
            // A short tick is already coming (it schedules the next one as things are
            // then), or the quiet one still fits.
            if !was_quiet || quiet {
                return;
            }
            ctx.cancel_future(handle);
        }
        let delay = if quiet {
            let now = Instant::now();
            let ping = self.last_ping + self.heartbeat;
            let silent = self.last_heard + self.client_timeout + Duration::from_millis(1);
            ping.min(silent)
                .saturating_duration_since(now)
                .max(MIN_TICK)
        } else {
            (self.ack_timeout / 2)
                .min(self.heartbeat)
                .clamp(MIN_TICK, Duration::from_secs(1))
        };
        let handle = ctx.run_later(delay, |act, ctx| {
            act.next_tick = None;
            act.tick(ctx);
            if act.next_tick.is_none() && !ctx.state().stopping() {
                act.schedule_tick(ctx);
            }
        });
        self.next_tick = Some((handle, quiet));
    }

    /// Resends what stayed unacked past the timeout; pings; drops a silent peer.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if now.duration_since(self.last_heard) > self.client_timeout {
            tracing::info!(agent_id = %self.agent_id(), "agent socket silent too long; dropping it");
            self.send_frame(
                Outbound::Close(Box::new(CloseReason {
                    code: CloseCode::Away,
                    description: Some("no frame or pong within the client timeout".into()),
                })),
                ctx,
            );
            ctx.stop();
            return;
        }
        if now.duration_since(self.last_ping) >= self.heartbeat {
            self.last_ping = now;
            if !self.send_frame(Outbound::Ping, ctx) {
                return;
            }
        }
        let mut due: Vec<_> = self
            .in_flight
            .values()
            .filter(|f| now.duration_since(f.sent_at) >= self.ack_timeout)
            .map(|f| (f.delivery.queue_seq, f.delivery.id.clone()))
            .collect();
        due.sort_unstable();
        let mut resent = Vec::with_capacity(due.len());
        for (_, id) in due {
            let Some(f) = self.in_flight.get_mut(&id) else {
                continue;
            };
            f.attempt += 1;
            f.sent_at = now;
            let (d, attempt) = (f.delivery.clone(), f.attempt);
            if !self.send_delivery(&d, attempt, ctx) {
                return;
            }
            resent.push(id);
        }
        self.hub.writer.sent(self.agent_id().clone(), resent);
        if self.in_sync && self.routed.load(Ordering::Acquire) > self.cursor {
            // A push was dropped and none followed to reveal it.
            self.in_sync = false;
        }
        self.maybe_fetch(ctx);
    }
}

impl Actor for AgentSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        let register = Register {
            agent_id: self.agent_id().clone(),
            session: ctx.address(),
            routed: self.routed.clone(),
        };
        // Register before the first read of the backlog: from then on every commit for
        // this agent is routed here, so the read cannot miss one.
        ctx.wait(
            self.hub.registry.send(register).into_actor(self).map(
                |result, act, ctx| match result {
                    Ok(generation) => {
                        act.generation = Some(generation);
                        tracing::info!(agent_id = %act.agent_id(), "agent connected");
                        // Hold reads until what a replaced connection recorded (sends,
                        // acks) is committed, so the backlog read reflects it.
                        let writer = act.hub.writer.clone();
                        ctx.spawn(async move { writer.barrier().await }.into_actor(act).map(
                            |(), act, ctx| {
                                act.fetching = false;
                                act.maybe_fetch(ctx);
                            },
                        ));
                    }
                    Err(_) => ctx.stop(),
                },
            ),
        );
        self.schedule_tick(ctx);
        let store = self.hub.store.clone();
        let agent_id = self.agent_id().clone();
        actix::spawn(async move {
            if let Err(e) = store.touch_agent(&agent_id, clock::now_ms()).await {
                tracing::warn!(error = %e, "could not record the agent's last-seen time");
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(generation) = self.generation {
            self.hub.registry.do_send(Unregister {
                agent_id: self.agent_id().clone(),
                generation,
            });
        }
        tracing::info!(agent_id = %self.agent_id(), unacked = self.in_flight.len(), "agent disconnected");
        let store = self.hub.store.clone();
        let agent_id = self.agent_id().clone();
        actix::spawn(async move {
            let _ = store.touch_agent(&agent_id, clock::now_ms()).await;
        });
    }
}

impl Handler<Push> for AgentSession {
    type Result = ();
    fn handle(&mut self, msg: Push, ctx: &mut Context<Self>) {
        self.on_push(msg, ctx);
    }
}

impl Handler<Close> for AgentSession {
    type Result = ();
    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) {
        let reason = CloseReason {
            code: CloseCode::from(msg.code),
            description: Some(msg.reason.to_owned()),
        };
        self.send_frame(Outbound::Close(Box::new(reason)), ctx);
        ctx.stop();
    }
}

impl Handler<CallResult> for AgentSession {
    type Result = ();
    fn handle(&mut self, msg: CallResult, ctx: &mut Context<Self>) {
        self.calls = self.calls.saturating_sub(1);
        self.send_frame(Outbound::Text(msg.0), ctx);
    }
}

impl Handler<FromSocket> for AgentSession {
    type Result = ();
    fn handle(&mut self, msg: FromSocket, ctx: &mut Context<Self>) {
        self.last_heard = Instant::now();
        match msg {
            FromSocket::Frame(WsMessage::Text(text)) => self.on_text(&text, ctx),
            FromSocket::Frame(WsMessage::Binary(_)) => {
                let frame =
                    protocol::error_frame("invalid_frame", "frames are JSON text, not binary");
                self.send_frame(Outbound::Text(frame), ctx);
            }
            FromSocket::Frame(WsMessage::Close(_)) | FromSocket::Ended => ctx.stop(),
            FromSocket::Violation(violation) => {
                tracing::info!(agent_id = %self.agent_id(), code = ?violation.code, reason = %violation.reason, "failing the agent socket");
                self.send_frame(Outbound::Close(Box::new(violation.close_reason())), ctx);
                ctx.stop();
            }
            FromSocket::Frame(WsMessage::Ping(bytes)) => {
                self.send_frame(Outbound::Pong(Box::new(bytes)), ctx);
            }
            // A pong, or any other frame, only proves the peer is alive.
            FromSocket::Frame(_) => {}
        }
    }
}

/// Feeds the socket's read half to the session, waiting for the session to take each
/// message, so a flood of frames is held back by TCP rather than queued in memory.
pub async fn read_socket(mut reader: FrameReader, session: Addr<AgentSession>) {
    while let Some(next) = reader.next().await {
        let msg = match next {
            Ok(frame) => FromSocket::Frame(frame),
            Err(violation) => FromSocket::Violation(violation),
        };
        let last = matches!(msg, FromSocket::Violation(_));
        if session.send(msg).await.is_err() || last {
            return;
        }
    }
    let _ = session.send(FromSocket::Ended).await;
}
