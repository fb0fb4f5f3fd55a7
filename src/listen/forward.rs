//! Handing a delivery to the local app: one POST with the provider's original headers and
//! the exact body, so that the app's own verification code for that provider works as in
//! production, plus the hub's Standard Webhooks headers, so that it can verify with any
//! Standard Webhooks library instead. Retried with backoff until the app answers 2xx.

use std::time::{Duration, Instant};

use awc::{
    http::header::{HeaderName, HeaderValue},
    Client,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Backoff;
use crate::{clock, routes::ingest::HOP_BY_HOP};

/// How long one request to the app may take before it counts as failed.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers that describe the hop from the provider to the hub, not the event: besides the
/// hop-by-hop ones ingest never stores, the client sets its own `host` and
/// `content-length`, and `expect` would make the app wait for a continue.
const NOT_FORWARDED: [&str; 3] = ["host", "content-length", "expect"];

/// The hub's Standard Webhooks headers. A generic provider sends headers of these names
/// too, signed when the event was received; the hub's are signed when the delivery is
/// sent, so they pass a timestamp tolerance even for an event that waited in the backlog,
/// and they replace the provider's.
const SIGNATURE_HEADERS: [&str; 3] = ["webhook-id", "webhook-timestamp", "webhook-signature"];

/// The parts of a `delivery` frame that forwarding needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub delivery_id: String,
    pub webhook_id: String,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub headers: Map<String, Value>,
    pub body: String,
    pub body_encoding: String,
    #[serde(default)]
    pub signature: Option<Map<String, Value>>,
}

impl Delivery {
    /// The body's bytes exactly as the provider sent them.
    pub fn body_bytes(&self) -> Result<Vec<u8>, String> {
        match self.body_encoding.as_str() {
            "utf8" => Ok(self.body.as_bytes().to_vec()),
            "base64" => STANDARD
                .decode(&self.body)
                .map_err(|e| format!("the body is not valid base64: {e}")),
            other => Err(format!("unknown bodyEncoding `{other}`")),
        }
    }

    /// The headers of the request to the app, in order: the provider's, then the hub's
    /// signature. Names or values HTTP cannot carry are left out.
    pub fn forward_headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let signed = self.signature.as_ref().filter(|s| !s.is_empty());
        let mut out = Vec::with_capacity(self.headers.len() + 3);
        for (name, value) in &self.headers {
            let lower = name.to_ascii_lowercase();
            if NOT_FORWARDED.contains(&lower.as_str())
                || HOP_BY_HOP.contains(&lower.as_str())
                || (signed.is_some() && SIGNATURE_HEADERS.contains(&lower.as_str()))
            {
                continue;
            }
            if let Some(pair) = header(&lower, value) {
                out.push(pair);
            }
        }
        if let Some(signature) = signed {
            for name in SIGNATURE_HEADERS {
                if let Some(pair) = signature.get(name).and_then(|v| header(name, v)) {
                    out.push(pair);
                }
            }
        }
        out
    }
}

fn header(name: &str, value: &Value) -> Option<(HeaderName, HeaderValue)> {
    let value = value.as_str()?;
    let pair = (
        HeaderName::from_bytes(name.as_bytes()).ok()?,
        HeaderValue::from_str(value).ok()?,
    );
    Some(pair)
}

pub struct Forwarder {
    client: Client,
    url: String,
    max_backoff: Duration,
}

impl Forwarder {
    pub fn new(client: Client, url: String, max_backoff: Duration) -> Self {
        Self {
            client,
            url,
            max_backoff,
        }
    }

    /// Posts the delivery until the app answers 2xx, then prints its line. Later
    /// deliveries wait meanwhile: the app sees events in the order the hub received them.
    pub async fn forward(&self, d: &Delivery) {
        let body = match d.body_bytes() {
            Ok(body) => bytes::Bytes::from(body),
            // Checked when the frame was read; a frame that fails here is not taken.
            Err(_) => return,
        };
        let headers = d.forward_headers();
        let mut backoff = Backoff::new(Duration::from_millis(500), self.max_backoff);
        let mut attempt = 1u32;
        loop {
            let started = Instant::now();
            let outcome = self.post(&headers, body.clone()).await;
            let latency = started.elapsed();
            match outcome {
                Ok(status) if (200..300).contains(&status) => {
                    print_line(d, &status.to_string(), latency, attempt);
                    return;
                }
                Ok(status) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(
                        delivery_id = %d.delivery_id, status, attempt, retry_in_ms = wait.as_millis() as u64,
                        "the app did not accept the delivery; it stays unacked and is retried"
                    );
                    actix_web::rt::time::sleep(wait).await;
                }
                Err(error) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(
                        delivery_id = %d.delivery_id, %error, attempt, retry_in_ms = wait.as_millis() as u64,
                        "could not reach the app; the delivery stays unacked and is retried"
                    );
                    actix_web::rt::time::sleep(wait).await;
                }
            }
            attempt += 1;
        }
    }

    async fn post(
        &self,
        headers: &[(HeaderName, HeaderValue)],
        body: bytes::Bytes,
    ) -> Result<u16, String> {
        let mut req = self.client.post(&self.url).timeout(ATTEMPT_TIMEOUT);
        for (name, value) in headers {
            req = req.append_header((name.clone(), value.clone()));
        }
        let mut resp = req.send_body(body).await.map_err(|e| e.to_string())?;
        // Read the answer so the connection can be used again; what it says is the app's.
        let _ = resp.body().limit(1024 * 1024).await;
        Ok(resp.status().as_u16())
    }
}

/// One line per delivery on stdout: when, which webhook, which event, the app's status,
/// how long the app took, and the delivery id to look it up by.
fn print_line(d: &Delivery, status: &str, latency: Duration, attempt: u32) {
    let tries = if attempt > 1 {
        format!("  (attempt {attempt})")
    } else {
        String::new()
    };
    use std::io::Write;
    // Not println!: a closed stdout must not stop deliveries the app already has.
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}  {}  {}  {}  {}ms  {}{}",
        clock::rfc3339(clock::now_ms()),
        d.webhook_id,
        d.event.as_deref().unwrap_or("-"),
        status,
        latency.as_millis(),
        d.delivery_id,
        tries
    );
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn delivery(v: Value) -> Delivery {
        serde_json::from_value(v).unwrap()
    }

    fn names(headers: &[(HeaderName, HeaderValue)]) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect()
    }

    #[test]
    fn provider_headers_go_with_the_hubs_signature_and_without_hop_headers() {
        let d = delivery(json!({
            "deliveryId": "dlv_1", "webhookId": "whk_1", "event": "push",
            "headers": {
                "host": "hooks.example.com", "content-length": "2", "connection": "close",
                "content-type": "application/json", "x-github-event": "push",
                "x-hub-signature-256": "sha256=ab", "webhook-id": "msg_provider"
            },
            "body": "{}", "bodyEncoding": "utf8",
            "signature": {"webhook-id": "dlv_1", "webhook-timestamp": "1700000000",
                          "webhook-signature": "v1,abc="}
        }));
        let got = names(&d.forward_headers());
        let want: Vec<(String, String)> = [
            ("content-type", "application/json"),
            ("x-github-event", "push"),
            ("x-hub-signature-256", "sha256=ab"),
            ("webhook-id", "dlv_1"),
            ("webhook-timestamp", "1700000000"),
            ("webhook-signature", "v1,abc="),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn without_a_hub_signature_the_providers_own_stay() {
        let d = delivery(json!({
            "deliveryId": "dlv_1", "webhookId": "whk_1",
            "headers": {"webhook-id": "msg_1", "bad\nname": "x", "x-ok": "fine"},
            "body": "", "bodyEncoding": "utf8"
        }));
        assert_eq!(
            names(&d.forward_headers()),
            [
                ("webhook-id".to_owned(), "msg_1".to_owned()),
                ("x-ok".to_owned(), "fine".to_owned())
            ]
        );
    }

    #[test]
    fn the_body_is_the_exact_bytes() {
        let raw = [0xffu8, 0x00, 0x10, 0x80];
        let d = delivery(json!({
            "deliveryId": "dlv_1", "webhookId": "whk_1",
            "body": STANDARD.encode(raw), "bodyEncoding": "base64"
        }));
        assert_eq!(d.body_bytes().unwrap(), raw);
        let d = delivery(json!({
            "deliveryId": "dlv_1", "webhookId": "whk_1",
            "body": "héllo", "bodyEncoding": "utf8"
        }));
        assert_eq!(d.body_bytes().unwrap(), "héllo".as_bytes());
        let d = delivery(json!({
            "deliveryId": "dlv_1", "webhookId": "whk_1",
            "body": "x", "bodyEncoding": "gzip"
        }));
        assert!(d.body_bytes().is_err());
    }
}
