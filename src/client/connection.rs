//! The connection to the hub's agent socket: connecting and reconnecting with backoff,
//! reading the hub's frames and writing acks, pings and pongs.

use std::{
    cell::RefCell,
    rc::Rc,
    time::{Duration, Instant},
};

use awc::{http::StatusCode, ws, Client};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;

use super::{
    args::ListenArgs,
    backoff::Backoff,
    ledger::{Arrival, Ledger},
};
use crate::protocol::{self, AgentFrame, DeliveryFrame, HubFrameType};

/// The largest frame accepted from the hub: a 25 MiB body that is not UTF-8 is about
/// 34 MiB of base64, with its headers around it.
const MAX_FRAME: usize = 64 * 1024 * 1024;
/// How often the hub is pinged, and how long it may stay silent before the connection is
/// taken for dead (the hub pings too, every 15 s by default).
const PING_EVERY: Duration = Duration::from_secs(15);
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// A connection that lasted this long was healthy: the next reconnect starts quickly.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// What the connection and the sink share (one thread: the actix system's).
#[derive(Default)]
pub(super) struct Shared {
    pub(super) ledger: Ledger,
    /// Frames to the current connection's writer; `None` while disconnected.
    pub(super) link: Option<mpsc::Sender<ws::Message>>,
    /// The current connection's writer, to let it send the closing frame on the way out.
    pub(super) writer: Option<tokio::task::JoinHandle<()>>,
}

impl Shared {
    /// Sends an ack or a nack on the current connection; false if it was not sent (there
    /// is none).
    pub(super) fn settle(&mut self, frame: &AgentFrame) -> bool {
        let Some(link) = &self.link else {
            return false;
        };
        serde_json::to_string(frame)
            .is_ok_and(|frame| link.try_send(ws::Message::Text(frame.into())).is_ok())
    }
}

/// A delivery taken from the hub: its frame as received, which stdout prints, and decoded.
pub(super) struct Taken {
    pub(super) raw: String,
    pub(super) delivery: DeliveryFrame<'static>,
}

/// Connects, reads until the connection ends, and connects again, with backoff. Returns
/// only on what retrying cannot fix: the token is refused, or another connection for the
/// same agent took over.
pub(super) async fn stay_connected(
    client: &Client,
    hub: &str,
    args: &ListenArgs,
    shared: Rc<RefCell<Shared>>,
    queue: mpsc::UnboundedSender<Taken>,
) -> Result<(), String> {
    let url = format!("{hub}/v1/agent/connect");
    let mut backoff = Backoff::new(Duration::from_millis(250), args.max_backoff);
    loop {
        let connected = client
            .ws(&url)
            .bearer_auth(args.token.expose())
            .max_frame_size(MAX_FRAME)
            .connect()
            .await;
        match connected {
            Ok((_, framed)) => {
                tracing::info!(hub = %hub, "connected; waiting for deliveries");
                let since = Instant::now();
                let (sink, stream) = framed.split();
                let (link, frames) = mpsc::channel(256);
                {
                    let mut shared = shared.borrow_mut();
                    shared.link = Some(link.clone());
                    shared.writer = Some(actix_web::rt::spawn(write_frames(sink, frames)));
                }
                let ended = read_frames(stream, &link, &shared, &queue).await;
                {
                    let mut shared = shared.borrow_mut();
                    shared.link = None;
                    shared.writer = None;
                    shared.ledger.connection_ended(Instant::now());
                }
                drop(link);
                if since.elapsed() >= HEALTHY_AFTER {
                    backoff.reset();
                }
                let wait = backoff.next_delay();
                match ended {
                    Ended::Replaced => {
                        return Err(
                            "another connection for this agent replaced this one; stopping"
                                .to_owned(),
                        )
                    }
                    Ended::Revoked => {
                        return Err(
                            "the hub closed the connection: this agent's token was rotated or the agent deleted; start again with the new token"
                                .to_owned(),
                        )
                    }
                    Ended::Lost(why) => tracing::warn!(
                        reason = %why, retry_in_ms = wait.as_millis() as u64,
                        "connection to the hub lost; reconnecting"
                    ),
                }
                actix_web::rt::time::sleep(wait).await;
            }
            Err(awc::error::WsClientError::InvalidResponseStatus(StatusCode::UNAUTHORIZED)) => {
                return Err("the hub refused the agent token".to_owned());
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(
                    hub = %hub, error = %e, retry_in_ms = wait.as_millis() as u64,
                    "cannot connect to the hub; trying again"
                );
                actix_web::rt::time::sleep(wait).await;
            }
        }
    }
}

/// Owns the socket's write half: acks, pongs, pings and the closing frame, in order.
async fn write_frames(
    mut sink: impl Sink<ws::Message> + Unpin,
    mut frames: mpsc::Receiver<ws::Message>,
) {
    while let Some(frame) = frames.recv().await {
        let closing = matches!(frame, ws::Message::Close(_));
        if sink.send(frame).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}

enum Ended {
    Replaced,
    /// The token no longer works: reconnecting with it would only be refused.
    Revoked,
    Lost(String),
}

async fn read_frames<E: std::fmt::Display>(
    mut stream: impl Stream<Item = Result<ws::Frame, E>> + Unpin,
    link: &mpsc::Sender<ws::Message>,
    shared: &Rc<RefCell<Shared>>,
    queue: &mpsc::UnboundedSender<Taken>,
) -> Ended {
    let mut ping = actix_web::rt::time::interval(PING_EVERY);
    let mut last_heard = Instant::now();
    loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = ping.tick() => {
                if last_heard.elapsed() > IDLE_TIMEOUT {
                    return Ended::Lost("the hub was silent too long".to_owned());
                }
                let _ = link.try_send(ws::Message::Ping(bytes::Bytes::new()));
                continue;
            }
        };
        last_heard = Instant::now();
        match frame {
            Some(Ok(ws::Frame::Text(text))) => on_text(&text, shared, queue),
            Some(Ok(ws::Frame::Ping(payload))) => {
                let _ = link.try_send(ws::Message::Pong(payload));
            }
            Some(Ok(ws::Frame::Close(reason))) => {
                let _ = link.try_send(ws::Message::Close(None));
                return match reason {
                    Some(r) if u16::from(r.code) == protocol::CLOSE_REPLACED => Ended::Replaced,
                    Some(r) if u16::from(r.code) == protocol::CLOSE_REVOKED => Ended::Revoked,
                    Some(r) => Ended::Lost(format!(
                        "closed by the hub: {}",
                        r.description
                            .unwrap_or_else(|| u16::from(r.code).to_string())
                    )),
                    None => Ended::Lost("closed by the hub".to_owned()),
                };
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Ended::Lost(e.to_string()),
            None => return Ended::Lost("the connection ended".to_owned()),
        }
    }
}

fn on_text(text: &[u8], shared: &Rc<RefCell<Shared>>, queue: &mpsc::UnboundedSender<Taken>) {
    let Ok(raw) = std::str::from_utf8(text) else {
        tracing::warn!("the hub sent a text frame that is not UTF-8; ignored");
        return;
    };
    match HubFrameType::of(raw) {
        Some(HubFrameType::Delivery) => {}
        Some(HubFrameType::Error) => {
            tracing::warn!(frame = %raw, "the hub reported an error");
            return;
        }
        Some(HubFrameType::Result) | None => {
            tracing::debug!(frame = %raw, "ignored a frame");
            return;
        }
    }
    let delivery = match serde_json::from_str::<DeliveryFrame<'static>>(raw) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "a delivery frame could not be read; left unacked");
            return;
        }
    };
    // Forwarding counts on both: a delivery it could not hand over whole is not taken.
    if let Err(e) = delivery.header_map() {
        tracing::warn!(delivery_id = %delivery.delivery_id, error = %e, "a delivery frame could not be read; left unacked");
        return;
    }
    if let Err(e) = delivery.body_bytes() {
        tracing::warn!(delivery_id = %delivery.delivery_id, error = %e, "left unacked");
        return;
    }
    let mut shared = shared.borrow_mut();
    match shared.ledger.arrive(&delivery.delivery_id, Instant::now()) {
        Arrival::Take => {
            let _ = queue.send(Taken {
                raw: raw.to_owned(),
                delivery,
            });
        }
        Arrival::Have => {
            tracing::debug!(delivery_id = %delivery.delivery_id, "already in hand; this copy is dropped");
        }
        Arrival::AckAgain => {
            tracing::info!(delivery_id = %delivery.delivery_id, "already handed over before the reconnect; acked again, not handed over twice");
            let ack = AgentFrame::Ack {
                delivery_id: delivery.delivery_id.to_string(),
                result: None,
            };
            if !shared.settle(&ack) {
                shared
                    .ledger
                    .done(&delivery.delivery_id, false, Instant::now());
            }
        }
    }
}
