//! Handing a delivery to the local app: one POST with the exact body and the provider's
//! own headers, so that the app's verification code for that provider works as in
//! production, plus the hub's Standard Webhooks headers, so that it can verify with any
//! Standard Webhooks library instead. One POST per attempt the hub makes; what the app
//! answered decides, by the [`Policy`], whether the delivery is acked, handed back to be
//! retried, or given up on.
//!
//! Which headers go is an allow-list, not a deny-list: the app listens on 127.0.0.1 and
//! often trusts what arrives there, while anyone who knows the webhook's URL chooses the
//! headers of what the hub receives. An `Authorization`, a `Cookie`, an `X-Forwarded-For`
//! or an `X-Original-URL` from the sender would reach the app as if a local proxy or the
//! user had set them. So only what the provider documents sending, the headers that say
//! how to read the body, and the names the user passed (`--forward-header`) go through.

use std::time::{Duration, Instant};

use awc::{
    http::header::{HeaderName, HeaderValue},
    Client,
};
use serde_json::{Map, Value};

use crate::{
    clock,
    domain::{headers::HOP_BY_HOP, Provider},
    protocol::{DeliveryFrame, ResultReport},
};

/// What to do with an answer that is not a 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// A 4xx gives the delivery up (the app says the request is wrong: sending it again
    /// would get the same answer); a 5xx, a timeout or no answer is retried.
    Default,
    /// Every failure is retried, 4xx included.
    RetryAll,
    /// Every failure gives the delivery up.
    RetryNone,
}

/// What the app's answer means for the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ack(Option<ResultReport>),
    Nack {
        requeue: bool,
        reason: String,
        result: Option<ResultReport>,
    },
}

/// Most of the app's answer shown with a failure.
const ANSWER_SHOWN: usize = 200;

/// How long one request to the app may take before it counts as failed.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers that describe the hop from the provider to the hub, not the event: besides the
/// hop-by-hop ones ingest never stores, the client sets its own `host` and
/// `content-length`, and `expect` would make the app wait for a continue. Not even
/// `--forward-header` passes them.
const NOT_FORWARDED: [&str; 3] = ["host", "content-length", "expect"];

/// How to read the body, whoever sent it.
const CONTENT_HEADERS: [&str; 3] = ["content-type", "content-encoding", "content-language"];

/// The hub's Standard Webhooks headers. A generic provider sends headers of these names
/// too, signed when the event was received; the hub's are signed when the delivery is
/// sent, so they pass a timestamp tolerance even for an event that waited in the backlog,
/// and they replace the provider's.
const SIGNATURE_HEADERS: [&str; 3] = ["webhook-id", "webhook-timestamp", "webhook-signature"];

/// Whether `provider` documents sending the header `name` (lower-case) with its events.
fn sent_by(provider: Provider, name: &str) -> bool {
    match provider {
        Provider::Github => {
            name.starts_with("x-github-")
                || name.starts_with("x-hub-signature")
                || name == "user-agent"
        }
        Provider::Stripe => name == "stripe-signature",
        Provider::Slack => name.starts_with("x-slack-"),
        Provider::Generic => SIGNATURE_HEADERS.contains(&name),
    }
}

/// A name given to `--forward-header`, lower-cased. The hop's own headers are refused:
/// the request to the app is a new hop, with its own.
pub fn forward_header_name(name: &str) -> Result<HeaderName, String> {
    let name = name.trim();
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a header name"))?;
    if NOT_FORWARDED.contains(&parsed.as_str()) || HOP_BY_HOP.contains(&parsed.as_str()) {
        return Err(format!(
            "`{name}` describes the hop to the hub, not the event; it cannot be forwarded"
        ));
    }
    Ok(parsed)
}

/// A comma-separated list of names for `--forward-header`; empty entries are skipped, so
/// that an empty variable means none.
pub fn forward_header_names(list: &str) -> Result<Vec<HeaderName>, String> {
    list.split(',')
        .filter(|name| !name.trim().is_empty())
        .map(forward_header_name)
        .collect()
}

/// The names a sender listed in its `Connection` header: hop-by-hop by its own say
/// (RFC 9110 §7.6.1), and so never forwarded. Ingest may have kept that header.
fn named_by_connection(headers: &Map<String, Value>) -> Vec<String> {
    headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
        .filter_map(|(_, value)| value.as_str())
        .flat_map(|value| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect()
}

// The forwarding rules live here, with the allow-list, rather than with the frame.
impl DeliveryFrame<'_> {
    /// The headers of the request to the app, in order: the provider's that pass (see the
    /// module's comment; `also` are the names the user added), then the hub's signature.
    /// Names or values HTTP cannot carry are left out.
    pub fn forward_headers(&self, also: &[HeaderName]) -> Vec<(HeaderName, HeaderValue)> {
        // Checked when the frame was read: a delivery whose headers are not an object is
        // not taken.
        let headers = self.header_map().unwrap_or_default();
        let signed = self.signature.as_deref();
        let provider = Provider::parse(&self.provider);
        let hop = named_by_connection(&headers);
        let mut out = Vec::with_capacity(headers.len() + 3);
        for (name, value) in &headers {
            let lower = name.to_ascii_lowercase();
            let name = lower.as_str();
            let allowed = CONTENT_HEADERS.contains(&name)
                || provider.is_some_and(|p| sent_by(p, name))
                || also.iter().any(|a| a.as_str() == name);
            if !allowed
                || hop.iter().any(|h| h == name)
                || (signed.is_some() && SIGNATURE_HEADERS.contains(&name))
            {
                continue;
            }
            if let Some(pair) = value.as_str().and_then(|value| header(name, value)) {
                out.push(pair);
            }
        }
        if let Some(signature) = signed {
            let values = [&signature.id, &signature.timestamp, &signature.signature];
            for (name, value) in SIGNATURE_HEADERS.iter().zip(values) {
                if let Some(pair) = header(name, value) {
                    out.push(pair);
                }
            }
        }
        out
    }
}

fn header(name: &str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    let pair = (
        HeaderName::from_bytes(name.as_bytes()).ok()?,
        HeaderValue::from_str(value).ok()?,
    );
    Some(pair)
}

pub struct Forwarder {
    client: Client,
    url: String,
    policy: Policy,
    /// Header names the user asked to pass besides the allow-list.
    also: Vec<HeaderName>,
}

/// What one POST to the app came to.
enum Answer {
    Status { status: u16, body: String },
    Unreachable(String),
}

impl Forwarder {
    pub fn new(client: Client, url: String, policy: Policy, also: Vec<HeaderName>) -> Self {
        Self {
            client,
            url,
            policy,
            also,
        }
    }

    /// Posts the delivery once, prints the attempt's line, and says what the answer
    /// means for it. The hub does the retrying (with its backoff and attempt limit), so
    /// the next delivery is not held up behind one the app refuses.
    pub async fn forward(&self, d: &DeliveryFrame<'_>) -> Verdict {
        let body = match d.body_bytes() {
            Ok(body) => bytes::Bytes::from(body),
            // Checked when the frame was read; a frame that fails here is not taken.
            Err(_) => return Verdict::Ack(None),
        };
        let headers = d.forward_headers(&self.also);
        let started = Instant::now();
        let answer = self.post(&headers, body).await;
        let ms = started.elapsed().as_millis() as u64;
        let verdict = judge(self.policy, &answer, ms);
        let (status, note) = match (&answer, &verdict) {
            (Answer::Status { status, .. }, Verdict::Ack(_)) => (status.to_string(), String::new()),
            (Answer::Status { status, body }, Verdict::Nack { requeue: false, .. }) => (
                status.to_string(),
                format!("  REJECTED by the app, not retried: {}", shown(body)),
            ),
            (Answer::Status { status, .. }, Verdict::Nack { .. }) => {
                (status.to_string(), "  retrying".to_owned())
            }
            (Answer::Unreachable(error), Verdict::Nack { requeue, .. }) => (
                "---".to_owned(),
                format!(
                    "  {}: {error}",
                    if *requeue {
                        "retrying"
                    } else {
                        "FAILED, not retried"
                    }
                ),
            ),
            (Answer::Unreachable(_), Verdict::Ack(_)) => ("---".to_owned(), String::new()),
        };
        print_line(d, &status, ms, &note);
        verdict
    }

    async fn post(&self, headers: &[(HeaderName, HeaderValue)], body: bytes::Bytes) -> Answer {
        // No decompression, so no Accept-Encoding of our own: the answer is thrown away,
        // and the app should see only what the provider and the hub sent.
        let mut req = self
            .client
            .post(&self.url)
            .timeout(ATTEMPT_TIMEOUT)
            .no_decompress();
        for (name, value) in headers {
            req = req.append_header((name.clone(), value.clone()));
        }
        let mut resp = match req.send_body(body).await {
            Ok(resp) => resp,
            Err(e) => return Answer::Unreachable(e.to_string()),
        };
        // Read the answer so the connection can be used again, and to show a refusal.
        let body = resp.body().limit(1024 * 1024).await.unwrap_or_default();
        Answer::Status {
            status: resp.status().as_u16(),
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

/// What `answer` means under `policy`.
fn judge(policy: Policy, answer: &Answer, ms: u64) -> Verdict {
    match answer {
        Answer::Status { status, body } => {
            let result = Some(ResultReport {
                status: *status,
                ms,
            });
            if (200..300).contains(status) {
                return Verdict::Ack(result);
            }
            let client_error = (400..500).contains(status);
            let requeue = match policy {
                Policy::Default => !client_error,
                Policy::RetryAll => true,
                Policy::RetryNone => false,
            };
            let reason = if body.trim().is_empty() {
                format!("the app answered {status}")
            } else {
                format!("the app answered {status}: {}", shown(body))
            };
            Verdict::Nack {
                requeue,
                reason,
                result,
            }
        }
        Answer::Unreachable(error) => Verdict::Nack {
            requeue: policy != Policy::RetryNone,
            reason: format!("could not reach the app: {error}"),
            result: None,
        },
    }
}

/// The start of the app's answer, on one line.
fn shown(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut cut: String = one_line.chars().take(ANSWER_SHOWN).collect();
    if cut.len() < one_line.len() {
        cut.push('…');
    }
    cut
}

/// One line per attempt on stdout: when, which webhook, which event, the app's status,
/// how long the app took, the delivery id to look it up by, the hub's attempt number past
/// the first, and what happens next if it failed.
fn print_line(d: &DeliveryFrame<'_>, status: &str, ms: u64, note: &str) {
    let tries = if d.attempt > 1 {
        format!("  (attempt {})", d.attempt)
    } else {
        String::new()
    };
    use std::io::Write;
    // Not println!: a closed stdout must not stop deliveries the app already has.
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}  {}  {}  {}  {}ms  {}{}{}",
        clock::rfc3339(clock::now_ms()),
        d.webhook_id,
        d.event.as_deref().unwrap_or("-"),
        status,
        ms,
        d.delivery_id,
        tries,
        note
    );
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use base64::{engine::general_purpose::STANDARD, Engine};
    use serde_json::json;

    use super::*;

    fn delivery(v: Value) -> DeliveryFrame<'static> {
        serde_json::from_value(v).unwrap()
    }

    fn names(headers: &[(HeaderName, HeaderValue)]) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn provider_headers_go_with_the_hubs_signature_and_without_hop_headers() {
        let d = delivery(json!({
            "deliveryId": "dlv_1", "webhookId": "whk_1", "provider": "github", "event": "push",
            "headers": {
                "host": "hooks.example.com", "content-length": "2", "connection": "close",
                "content-type": "application/json", "x-github-event": "push",
                "x-hub-signature-256": "sha256=ab", "webhook-id": "msg_provider"
            },
            "body": "{}", "bodyEncoding": "utf8",
            "signature": {"webhook-id": "dlv_1", "webhook-timestamp": "1700000000",
                          "webhook-signature": "v1,abc="}
        }));
        assert_eq!(
            names(&d.forward_headers(&[])),
            pairs(&[
                ("content-type", "application/json"),
                ("x-github-event", "push"),
                ("x-hub-signature-256", "sha256=ab"),
                ("webhook-id", "dlv_1"),
                ("webhook-timestamp", "1700000000"),
                ("webhook-signature", "v1,abc="),
            ])
        );
    }

    #[test]
    fn without_a_hub_signature_a_generic_senders_own_stay() {
        let d = delivery(json!({
            "deliveryId": "dlv_1", "webhookId": "whk_1", "provider": "generic",
            "headers": {"webhook-id": "msg_1", "bad\nname": "x", "x-ok": "fine"},
            "body": "", "bodyEncoding": "utf8"
        }));
        assert_eq!(
            names(&d.forward_headers(&[])),
            pairs(&[("webhook-id", "msg_1")])
        );
    }

    /// Every provider's documented headers, and what a sender could add.
    fn all_kinds() -> Map<String, Value> {
        let v = json!({
            "Content-Type": "application/json", "content-encoding": "gzip",
            "content-language": "en",
            "user-agent": "GitHub-Hookshot/1", "x-github-event": "push",
            "x-github-delivery": "d1", "x-hub-signature": "sha1=ab", "x-hub-signature-256": "sha256=ab",
            "stripe-signature": "t=1,v1=ab",
            "x-slack-signature": "v0=ab", "x-slack-request-timestamp": "1", "x-slack-retry-num": "1",
            "webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,ab",
            "authorization": "Bearer x", "cookie": "a=b", "x-api-key": "k",
            "x-forwarded-for": "10.0.0.1", "forwarded": "for=10.0.0.1", "x-real-ip": "10.0.0.1",
            "via": "1.1 p", "x-original-url": "/admin", "x-rewrite-url": "/admin",
            "true-client-ip": "10.0.0.1", "cf-connecting-ip": "10.0.0.1", "x-custom": "c"
        });
        match v {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    fn forwarded_names(provider: &str, headers: Map<String, Value>, also: &[&str]) -> Vec<String> {
        let d = DeliveryFrame {
            delivery_id: "dlv_1".into(),
            webhook_id: "whk_1".into(),
            provider: provider.into(),
            event: None,
            received_at: String::new(),
            attempt: 1,
            verified: true,
            headers: Cow::Owned(serde_json::value::to_raw_value(&headers).unwrap()),
            body: "".into(),
            body_encoding: "utf8".into(),
            signature: None,
        };
        let also: Vec<HeaderName> = also
            .iter()
            .map(|n| forward_header_name(n).unwrap())
            .collect();
        d.forward_headers(&also)
            .into_iter()
            .map(|(n, _)| n.to_string())
            .collect()
    }

    #[test]
    fn each_provider_gets_its_own_headers_and_the_content_headers_only() {
        let content = ["content-type", "content-encoding", "content-language"];
        let cases: [(&str, &[&str]); 5] = [
            (
                "github",
                &[
                    "user-agent",
                    "x-github-event",
                    "x-github-delivery",
                    "x-hub-signature",
                    "x-hub-signature-256",
                ],
            ),
            ("stripe", &["stripe-signature"]),
            (
                "slack",
                &[
                    "x-slack-signature",
                    "x-slack-request-timestamp",
                    "x-slack-retry-num",
                ],
            ),
            (
                "generic",
                &["webhook-id", "webhook-timestamp", "webhook-signature"],
            ),
            // A provider this build does not know: nothing of its own.
            ("pagerduty", &[]),
        ];
        for (provider, own) in cases {
            let mut want: Vec<String> = content.iter().chain(own).map(|s| s.to_string()).collect();
            want.sort();
            let mut got = forwarded_names(provider, all_kinds(), &[]);
            got.sort();
            assert_eq!(got, want, "{provider}");
        }
        let mut got = forwarded_names("stripe", all_kinds(), &["X-Custom", "authorization"]);
        got.sort();
        assert_eq!(
            got,
            [
                "authorization",
                "content-encoding",
                "content-language",
                "content-type",
                "stripe-signature",
                "x-custom"
            ]
        );
    }

    #[test]
    fn what_the_sender_named_in_connection_never_goes() {
        let mut headers = all_kinds();
        headers.insert(
            "Connection".into(),
            json!("keep-alive, X-GitHub-Event ,x-custom,,Content-Language"),
        );
        let mut got = forwarded_names("github", headers, &["x-custom"]);
        got.sort();
        assert_eq!(
            got,
            [
                "content-encoding",
                "content-type",
                "user-agent",
                "x-github-delivery",
                "x-hub-signature",
                "x-hub-signature-256"
            ]
        );
    }

    #[test]
    fn forward_header_takes_a_name_but_not_the_hops_own() {
        assert_eq!(
            forward_header_name(" X-Custom ").unwrap().as_str(),
            "x-custom"
        );
        for name in [
            "host",
            "Content-Length",
            "expect",
            "connection",
            "transfer-encoding",
            "proxy-authorization",
        ] {
            let e = forward_header_name(name).unwrap_err();
            assert!(e.contains("cannot be forwarded"), "{name}: {e}");
        }
        for name in ["", "bad name", "x:y"] {
            let e = forward_header_name(name).unwrap_err();
            assert!(e.contains("not a header name"), "{name:?}: {e}");
        }
        let list = forward_header_names(" X-A, x-b,,").unwrap();
        assert_eq!(list, ["x-a", "x-b"]);
        assert_eq!(forward_header_names("").unwrap(), Vec::<HeaderName>::new());
        assert!(forward_header_names("x-a,host").is_err());
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
