//! `AgentSession`: one actor per connected agent socket.
//!
//! It sends the agent's deliveries in queue order within its [`Window`], which decides
//! what to read from the store, what to take from the registry's pushes and what to send
//! or send again; the actor does the I/O those decisions call for: the store's reads, the
//! socket's frames, the writer's sends and acks, and the agent's tool calls.
//!
//! The socket itself is written by one task fed through a bounded channel, so frames leave
//! in the order the actor produced them and a stuck peer cannot grow memory: an agent
//! that stops reading until that channel is full is dropped.

use std::{
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
    window::{Page, Send, Window},
    wire::{FrameReader, Outbound, Violation},
};
use crate::{
    clock,
    domain::{
        ids::{AgentId, DeliveryId},
        PendingDelivery, Via,
    },
    pipeline::registry::{Close, Push, Register, Unregister},
    protocol::{self, AgentFrame, ResultReport},
    signer::Signer,
    state::Hub,
    store::OwnedAgent,
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
pub struct CallResult(pub Result<String, serde_json::Error>);

/// Tool calls one socket may have running at once; more are refused until one finishes,
/// so an agent that pipelines calls cannot grow the hub's memory without bound.
pub const MAX_CALLS_IN_FLIGHT: usize = 16;

pub struct AgentSession {
    /// Shared, not copied: one pointer per session instead of a clone of every handle.
    hub: Arc<Hub>,
    agent: OwnedAgent,
    /// Frames to the socket writer task.
    out: mpsc::Sender<Outbound>,
    /// What is taken from the queue, sent and unacked: the no-gap, no-duplicate state.
    window: Window,
    ack_timeout: Duration,
    heartbeat: Duration,
    client_timeout: Duration,
    /// Set by the registry to the last queue position it routed here.
    routed: Arc<AtomicI64>,
    generation: Option<u64>,
    /// Each webhook's signing keys, opened once for this session's frames.
    signer: Signer,
    /// Tool calls running, at most [`MAX_CALLS_IN_FLIGHT`].
    calls: usize,
    authenticated_at: Instant,
    last_heard: Instant,
    last_ping: Instant,
    /// The next tick, and whether it is the long one of a quiet session.
    next_tick: Option<(SpawnHandle, bool)>,
}

impl AgentSession {
    /// `authenticated_at`: when the agent's token was checked, so that a revocation that
    /// came after the check but before this session registered still ends it.
    pub fn new(
        hub: Arc<Hub>,
        agent: OwnedAgent,
        authenticated_at: Instant,
        out: mpsc::Sender<Outbound>,
    ) -> Self {
        let config = hub.config.clone();
        Self {
            hub,
            agent,
            authenticated_at,
            out,
            window: Window::new(
                config.window as usize,
                usize::try_from(config.window_bytes).unwrap_or(usize::MAX),
                config.ack_timeout,
                config.max_attempts,
            ),
            ack_timeout: config.ack_timeout,
            heartbeat: config.heartbeat,
            client_timeout: config.client_timeout,
            routed: Arc::new(AtomicI64::new(0)),
            generation: None,
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

    /// Queues a frame made by [`protocol`]; one that could not be encoded is logged and
    /// not sent, rather than sent as something it does not say.
    fn send_encoded(&mut self, frame: Result<String, serde_json::Error>, ctx: &mut Context<Self>) {
        match frame {
            Ok(frame) => {
                self.send_frame(Outbound::Text(frame), ctx);
            }
            Err(e) => {
                tracing::error!(agent_id = %self.agent_id(), error = %e, "a frame could not be encoded; not sent");
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
        let frame = match protocol::delivery_frame(d, attempt, signature.as_ref()) {
            Ok(frame) => frame,
            Err(e) => {
                // It stays unacked: the ack timeout tries again, and logs again, until
                // retention expires it. Nothing is sent in its place.
                tracing::error!(agent_id = %self.agent_id(), delivery_id = %d.id, error = %e, "a delivery frame could not be encoded; not sent");
                return true;
            }
        };
        let handed = self.send_frame(Outbound::Text(frame), ctx);
        if handed {
            self.hub
                .metrics
                .observe_delivered(d.received_at, clock::now_ms());
        }
        handed
    }

    fn routed(&self) -> i64 {
        self.routed.load(Ordering::Acquire)
    }

    /// Sends what the window has room for, then reads on if it asks to.
    fn fill_window(&mut self, ctx: &mut Context<Self>) {
        let sends = self.window.take_sendable(Instant::now(), clock::now_ms());
        self.record_ends(ctx);
        if !self.send_all(&sends, ctx) {
            return;
        }
        self.maybe_fetch(ctx);
        self.schedule_tick(ctx);
    }

    /// Writes each delivery to the socket and records them as sent; false once the socket
    /// is gone (the session is then stopping).
    fn send_all(&mut self, sends: &[Send], ctx: &mut Context<Self>) -> bool {
        for send in sends {
            if !self.send_delivery(&send.delivery, send.attempt, ctx) {
                return false;
            }
        }
        let ids = sends.iter().map(|s| s.delivery.id.clone()).collect();
        if let Some(room) = self
            .hub
            .writer
            .sent(self.agent_id().clone(), Via::Socket, ids)
        {
            ctx.wait(room.into_actor(self));
        }
        true
    }

    /// Hands the writer the attempts the window saw end unacked.
    fn record_ends(&mut self, ctx: &mut Context<Self>) {
        for end in self.window.take_ends() {
            if let Some(room) = self.hub.writer.ended(self.agent_id().clone(), end) {
                ctx.wait(room.into_actor(self));
            }
        }
    }

    /// Reads the next page of the queue from the store, if the window asks for one.
    fn maybe_fetch(&mut self, ctx: &mut Context<Self>) {
        let Some(read) = self.window.next_read() else {
            return;
        };
        let store = self.hub.store.clone();
        let agent_id = self.agent_id().clone();
        let fut = async move {
            store
                .pending_page(
                    &agent_id,
                    read.after,
                    read.limit,
                    read.max_bytes,
                    read.first_always,
                )
                .await
        };
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            let page = match result {
                Ok(page) => Some(Page {
                    deliveries: page.deliveries,
                    is_short: page.is_short,
                }),
                // The next tick tries again.
                Err(e) => {
                    tracing::error!(agent_id = %act.agent_id(), error = %e, "reading the backlog failed");
                    None
                }
            };
            let routed = act.routed();
            act.window.read_done(page, routed);
            act.fill_window(ctx);
        }));
        self.schedule_tick(ctx);
    }

    fn on_push(&mut self, push: Push, ctx: &mut Context<Self>) {
        self.window.settle(&push.settled);
        self.window.push(push.prev, push.deliveries);
        // Deliveries queued again in bulk come as a position only: read them.
        self.window.check_routed(self.routed());
        self.fill_window(ctx);
    }

    /// The frame's delivery id and handler result, checked; `None` after answering an
    /// error frame.
    fn read_settlement(
        &mut self,
        delivery_id: &str,
        result: Option<ResultReport>,
        ctx: &mut Context<Self>,
    ) -> Option<(DeliveryId, Option<crate::domain::HandlerResult>)> {
        let Some(id) = DeliveryId::parse(delivery_id) else {
            let frame = protocol::error_frame("invalid_frame", "`deliveryId` is not a delivery id");
            self.send_encoded(frame, ctx);
            return None;
        };
        let result = match result.map(ResultReport::checked) {
            None => None,
            Some(Some(r)) => Some(r),
            Some(None) => {
                let frame = protocol::error_frame(
                    "invalid_frame",
                    "`result.status` must be an HTTP status, 100 to 599",
                );
                self.send_encoded(frame, ctx);
                return None;
            }
        };
        Some((id, result))
    }

    fn on_ack(&mut self, delivery_id: &str, result: Option<ResultReport>, ctx: &mut Context<Self>) {
        let Some((id, result)) = self.read_settlement(delivery_id, result, ctx) else {
            return;
        };
        if let Some(attempt) = self.window.ack(&id) {
            self.hub.metrics.attempts_per_ack.observe(attempt as f64);
        }
        if let Some(room) = self.hub.writer.ack(self.agent_id().clone(), id, result) {
            // Nothing more from this socket until the writer has room for it.
            ctx.wait(room.into_actor(self));
        }
        self.fill_window(ctx);
    }

    fn on_nack(
        &mut self,
        delivery_id: &str,
        requeue: bool,
        reason: Option<String>,
        result: Option<ResultReport>,
        ctx: &mut Context<Self>,
    ) {
        let Some((id, result)) = self.read_settlement(delivery_id, result, ctx) else {
            return;
        };
        let reason = reason.map(|r| r.chars().take(protocol::MAX_NACK_REASON).collect());
        let end = self.window.nack(
            &id,
            requeue,
            reason,
            result,
            Instant::now(),
            clock::now_ms(),
        );
        if let Some(end) = end {
            if let Some(room) = self.hub.writer.ended(self.agent_id().clone(), end) {
                ctx.wait(room.into_actor(self));
            }
        }
        self.fill_window(ctx);
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        match serde_json::from_str::<AgentFrame>(text) {
            Ok(AgentFrame::Ack {
                delivery_id,
                result,
            }) => self.on_ack(&delivery_id, result, ctx),
            Ok(AgentFrame::Nack {
                delivery_id,
                requeue,
                reason,
                result,
            }) => self.on_nack(&delivery_id, requeue, reason, result, ctx),
            Ok(AgentFrame::Call { id, tool, args }) => self.on_call(id, tool, args, ctx),
            Err(e) => {
                let frame = protocol::error_frame(
                    "invalid_frame",
                    &format!("expected an `ack`, `nack` or `call` frame: {e}"),
                );
                self.send_encoded(frame, ctx);
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
            self.send_encoded(frame, ctx);
            return;
        }
        self.calls += 1;
        let hub = self.hub.clone();
        let caller = crate::service::Caller::Agent(self.agent.clone());
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
        self.window.is_quiet(self.routed())
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
        let due = self.window.take_due(now, clock::now_ms());
        self.record_ends(ctx);
        if !self.send_all(&due, ctx) {
            return;
        }
        let routed = self.routed();
        self.window.check_routed(routed);
        self.maybe_fetch(ctx);
    }
}

impl Actor for AgentSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        let register = Register {
            agent_id: self.agent_id().clone(),
            authenticated_at: self.authenticated_at,
            push: ctx.address().recipient(),
            close: ctx.address().recipient(),
            routed: self.routed.clone(),
        };
        // Register before the first read of the backlog: from then on every commit for
        // this agent is routed here, so the read cannot miss one.
        ctx.wait(
            self.hub.registry.send(register).into_actor(self).map(
                |result, act, ctx| match result {
                    Ok(Some(generation)) => {
                        act.generation = Some(generation);
                        tracing::info!(agent_id = %act.agent_id(), "agent connected");
                        // Hold reads until what a replaced connection recorded (sends,
                        // acks) is committed, so the backlog read reflects it.
                        let writer = act.hub.writer.clone();
                        ctx.spawn(async move { writer.barrier().await }.into_actor(act).map(
                            |(), act, ctx| {
                                act.window.start();
                                act.maybe_fetch(ctx);
                            },
                        ));
                    }
                    Ok(None) => <Self as Handler<Close>>::handle(
                        act,
                        Close {
                            code: protocol::CLOSE_REVOKED,
                            reason: "token rotated or agent deleted",
                        },
                        ctx,
                    ),
                    Err(_) => ctx.stop(),
                },
            ),
        );
        self.schedule_tick(ctx);
        self.hub.writer.seen(self.agent_id().clone());
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(generation) = self.generation {
            self.hub.registry.do_send(Unregister {
                agent_id: self.agent_id().clone(),
                generation,
            });
        }
        tracing::info!(agent_id = %self.agent_id(), unacked = self.window.unacked(), "agent disconnected");
        for end in self.window.disconnected(clock::now_ms()) {
            if let Some(room) = self.hub.writer.ended(self.agent_id().clone(), end) {
                // The actor is gone; the wait (which holds the record) outlives it.
                actix::spawn(room);
            }
        }
        self.hub.writer.seen(self.agent_id().clone());
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
        self.send_encoded(msg.0, ctx);
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
                self.send_encoded(frame, ctx);
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
