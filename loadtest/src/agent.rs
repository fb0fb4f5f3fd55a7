//! A simulated agent: one WebSocket to the hub that acks every delivery as soon as it
//! arrives and keeps the ledger the verdict is made from — which delivery ids it got, how
//! often, in what order per poster, and after how long.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures_util::{FutureExt, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio::{net::TcpStream, sync::watch};
use tokio_tungstenite::{
    client_async_with_config,
    tungstenite::{client::IntoClientRequest, protocol::WebSocketConfig, Message},
    WebSocketStream,
};

use crate::{post::Marker, Error};

/// Shared by every agent of a run, read by the driver while it waits.
#[derive(Default)]
pub struct Progress {
    /// Deliveries received for the first time, all agents.
    pub first_receipts: AtomicU64,
    /// When the latest ack was written, in µs since the run's epoch.
    pub last_ack_us: AtomicU64,
    /// Agents whose socket is open.
    pub connected: AtomicU64,
}

/// What one agent saw.
#[derive(Default)]
pub struct AgentLedger {
    pub agent: usize,
    /// Delivery id → times received.
    pub received: HashMap<String, u32>,
    /// First receipts whose poster sequence was not above the one before it.
    pub reordered: u64,
    pub first_reorder: Option<String>,
    /// POST-to-agent latency in µs, first attempts only; made on first use.
    pub latency: Option<Histogram<u64>>,
    pub pings: u64,
    /// Frames that were neither deliveries nor control frames (an `error` frame, say).
    pub unexpected_frames: u64,
    pub first_unexpected: Option<String>,
    /// Why the socket ended early, if it did.
    pub failure: Option<String>,
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(rename = "deliveryId")]
    delivery_id: Option<String>,
    body: Option<std::borrow::Cow<'a, str>>,
}

pub type Socket = WebSocketStream<TcpStream>;

/// Opens an agent socket. `small` buffers for the idle-connections scenario.
pub async fn connect(
    addr: std::net::SocketAddr,
    url: &str,
    token: &str,
    small: bool,
) -> Result<Socket, Error> {
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let config = if small {
        WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
    } else {
        WebSocketConfig::default()
            .read_buffer_size(64 * 1024)
            .write_buffer_size(0)
    };
    let (ws, _) = client_async_with_config(req, tcp, Some(config)).await?;
    Ok(ws)
}

/// Reads and acks until `stop` turns true; returns the ledger.
pub async fn run(
    agent: usize,
    mut ws: Socket,
    epoch: std::time::Instant,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) -> AgentLedger {
    let mut ledger = AgentLedger {
        agent,
        ..AgentLedger::default()
    };
    let mut last_seq: HashMap<u32, u64> = HashMap::new();
    progress.connected.fetch_add(1, Ordering::Relaxed);
    'outer: loop {
        let first = tokio::select! {
            _ = stop.changed() => break,
            msg = ws.next() => msg,
        };
        let mut msg = first;
        let mut acks = 0u32;
        loop {
            match msg {
                Some(Ok(Message::Text(text))) => {
                    if let Some(ack) = on_text(&text, &mut ledger, &mut last_seq, &progress) {
                        if let Err(e) = ws.feed(Message::Text(ack.into())).await {
                            ledger.failure = Some(format!("writing an ack: {e}"));
                            break 'outer;
                        }
                        acks += 1;
                    }
                }
                Some(Ok(Message::Ping(_))) => ledger.pings += 1,
                Some(Ok(Message::Close(reason))) => {
                    ledger.failure = Some(format!("the hub closed the socket: {reason:?}"));
                    break 'outer;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    ledger.failure = Some(format!("socket error: {e}"));
                    break 'outer;
                }
                None => {
                    ledger.failure = Some("the socket ended".to_owned());
                    break 'outer;
                }
            }
            // Take whatever else is already here before writing the acks out together.
            match ws.next().now_or_never() {
                Some(next) => msg = next,
                None => break,
            }
        }
        if acks > 0 {
            if let Err(e) = ws.flush().await {
                ledger.failure = Some(format!("writing acks: {e}"));
                break;
            }
            let at = epoch.elapsed().as_micros() as u64;
            progress.last_ack_us.fetch_max(at, Ordering::Relaxed);
        }
    }
    progress.connected.fetch_sub(1, Ordering::Relaxed);
    let _ = ws.close(None).await;
    ledger
}

/// Records one text frame; the ack to send for a delivery.
pub(crate) fn on_text(
    text: &str,
    ledger: &mut AgentLedger,
    last_seq: &mut HashMap<u32, u64>,
    progress: &Progress,
) -> Option<String> {
    let now_ns = unix_nanos();
    let frame: Frame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(_) => {
            unexpected(ledger, text);
            return None;
        }
    };
    let (true, Some(id), Some(body)) = (frame.kind == "delivery", frame.delivery_id, frame.body)
    else {
        unexpected(ledger, text);
        return None;
    };
    let count = ledger.received.entry(id.clone()).or_insert(0);
    *count += 1;
    if *count == 1 {
        progress.first_receipts.fetch_add(1, Ordering::Relaxed);
        match serde_json::from_str::<Marker>(&body) {
            Ok(m) => {
                let prev = last_seq.insert(m.p, m.s);
                if prev.is_some_and(|p| p >= m.s) {
                    ledger.reordered += 1;
                    ledger.first_reorder.get_or_insert_with(|| {
                        format!("poster {} seq {} after seq {}", m.p, m.s, prev.unwrap_or(0))
                    });
                }
                let us = now_ns.saturating_sub(m.t) / 1000;
                ledger
                    .latency
                    .get_or_insert_with(new_histogram)
                    .saturating_record(us.max(1));
            }
            Err(_) => unexpected(ledger, "a delivery whose body is not a loadtest marker"),
        }
    }
    Some(format!(r#"{{"type":"ack","deliveryId":"{id}"}}"#))
}

fn unexpected(ledger: &mut AgentLedger, text: &str) {
    ledger.unexpected_frames += 1;
    ledger
        .first_unexpected
        .get_or_insert_with(|| text.chars().take(300).collect());
}

/// Microseconds, 1 µs to 10 minutes, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|_| unreachable!("1 µs to 10 minutes at 3 digits is a valid range"))
}

pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos() as u64
}
