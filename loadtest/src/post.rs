//! Posters: each one a single HTTP/1.1 connection posting signed deliveries one after the
//! other, in a closed loop (next post when the last is answered) or an open loop (each post
//! at its scheduled time, latency counted from that time so a stalled hub cannot hide its
//! stall by slowing the sender down).

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::STANDARD, Engine};
use bytes::Bytes;
use hdrhistogram::Histogram;
use hmac::{Hmac, Mac};
use hyper::Method;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{
    agent::{new_histogram, unix_nanos},
    http::Conn,
    hub::Webhook,
};

/// What every posted body carries, read back by the agent.
#[derive(Serialize, Deserialize)]
pub struct Marker {
    /// Poster index.
    pub p: u32,
    /// The poster's sequence number: a poster's posts are sequential, so its deliveries
    /// must reach each agent in increasing `s`.
    pub s: u64,
    /// Wall-clock send time in ns since the epoch (same clock as the agents').
    pub t: u64,
}

pub struct Plan {
    pub addr: SocketAddr,
    pub webhooks: Arc<Vec<Webhook>>,
    pub body_bytes: usize,
    /// Open loop at this many posts per second in all; `None`: closed loop.
    pub rate: Option<f64>,
    pub posters: usize,
    pub total: u64,
    /// Makes each post's `webhook-id` (the sender's delivery id, which the hub dedupes on)
    /// unique across runs against the same webhooks; set by [`crate::scenarios::post_all`].
    pub run_id: u64,
}

/// What one poster did.
pub struct PosterResult {
    /// `(deliveryId, agent index)` of every 202.
    pub accepted: Vec<(String, usize)>,
    /// µs from the send (closed loop) or the scheduled time (open loop) to the 202.
    pub latency: Histogram<u64>,
    /// µs a post went out after its scheduled time (open loop).
    pub lag: Histogram<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Posts this poster's share of `plan.total`; `start` is the shared schedule origin.
pub async fn run(plan: Arc<Plan>, poster: usize, start: Instant) -> PosterResult {
    let mut out = PosterResult {
        accepted: Vec::new(),
        latency: new_histogram(),
        lag: new_histogram(),
        errors: 0,
        first_error: None,
    };
    let m = plan.posters as u64;
    let count = plan.total / m + u64::from((poster as u64) < plan.total % m);
    let mut conn: Option<Conn> = None;
    let run = plan.run_id;
    let pad_base = plan.body_bytes;
    for k in 0..count {
        // Global post number j = k·M + poster: the schedule is exact for the whole run.
        let j = k * m + poster as u64;
        let webhook = &plan.webhooks[(j % plan.webhooks.len() as u64) as usize];
        let scheduled = plan
            .rate
            .map(|r| start + Duration::from_secs_f64(j as f64 / r));
        if let Some(at) = scheduled {
            tokio::time::sleep_until(at.into()).await;
        }
        let sent = Instant::now();
        if let Some(at) = scheduled {
            out.lag
                .saturating_record(sent.saturating_duration_since(at).as_micros() as u64);
        }
        let marker = Marker {
            p: poster as u32,
            s: k,
            t: unix_nanos(),
        };
        let body = body_of(&marker, pad_base);
        let msg_id = format!("msg_{run}_{poster}_{k}");
        let ts = (marker.t / 1_000_000_000).to_string();
        let sig = sign(&webhook.key, &msg_id, &ts, &body);
        let headers = [
            ("content-type", "application/json"),
            ("webhook-id", msg_id.as_str()),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", sig.as_str()),
        ];
        let result = match conn.as_mut() {
            Some(c) => c.request(Method::POST, &webhook.path, &headers, body).await,
            None => match Conn::open(plan.addr).await {
                Ok(c) => {
                    let c = conn.insert(c);
                    c.request(Method::POST, &webhook.path, &headers, body).await
                }
                Err(e) => Err(e),
            },
        };
        let done = Instant::now();
        let from = scheduled.unwrap_or(sent);
        match result {
            Ok(r) if r.status == 202 => {
                out.latency.saturating_record(
                    done.saturating_duration_since(from).as_micros().max(1) as u64,
                );
                match r.json()["deliveryId"].as_str() {
                    Some(id) => out.accepted.push((id.to_owned(), webhook.agent)),
                    None => fail(
                        &mut out,
                        format!(
                            "202 without a deliveryId: {}",
                            String::from_utf8_lossy(&r.body)
                        ),
                    ),
                }
            }
            Ok(r) => fail(
                &mut out,
                format!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
            ),
            Err(e) => {
                // The connection may be gone: open a new one for the next post.
                conn = None;
                fail(&mut out, format!("transport: {e}"));
            }
        }
    }
    out
}

fn fail(out: &mut PosterResult, msg: String) {
    out.errors += 1;
    out.first_error.get_or_insert(msg);
}

/// `{"p":…,"s":…,"t":…,"pad":"xxx…"}` padded to exactly `size` bytes when it fits.
pub fn body_of(marker: &Marker, size: usize) -> Bytes {
    let head = format!(
        r#"{{"p":{},"s":{},"t":{},"pad":""#,
        marker.p, marker.s, marker.t
    );
    let pad = size.saturating_sub(head.len() + 2);
    let mut body = Vec::with_capacity(head.len() + pad + 2);
    body.extend_from_slice(head.as_bytes());
    body.resize(head.len() + pad, b'x');
    body.extend_from_slice(b"\"}");
    Bytes::from(body)
}

/// Standard Webhooks `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`.
fn sign(key: &[u8], id: &str, ts: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_asked_size_and_parse_back() {
        let m = Marker {
            p: 3,
            s: 41,
            t: 1_700_000_000_123_456_789,
        };
        let body = body_of(&m, 1024);
        assert_eq!(body.len(), 1024);
        let back: Marker = serde_json::from_slice(&body).unwrap();
        assert_eq!((back.p, back.s, back.t), (3, 41, 1_700_000_000_123_456_789));
    }
}
