//! The JSON frames of the agent socket (`GET /v1/agent/connect`).

use serde::{Deserialize, Serialize};
use serde_json::{value::RawValue, Value};

use base64::{engine::general_purpose::STANDARD, Engine};

use crate::{clock::rfc3339, domain::PendingDelivery};

/// The error object of every failure, the same over HTTP (`{"error": …}`) and in a
/// `result` frame: a stable `code`, a message for people, the `field` at fault if any.
#[derive(Serialize)]
pub struct ErrorDetail {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

/// A body as text when it is UTF-8, else base64: `(body, bodyEncoding)`.
pub fn encode_body(body: &[u8]) -> (std::borrow::Cow<'_, str>, &'static str) {
    match std::str::from_utf8(body) {
        Ok(s) => (s.into(), "utf8"),
        Err(_) => (STANDARD.encode(body).into(), "base64"),
    }
}

/// Close code for a socket replaced by a newer connection of the same agent: the client
/// should not reconnect, or the two would replace each other forever.
pub const CLOSE_REPLACED: u16 = 4000;

/// Agent → hub.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Inbound {
    Ack {
        #[serde(rename = "deliveryId")]
        delivery_id: String,
    },
    Call {
        id: String,
        /// Missing is answered as a failed call (with the `id`), not as an unreadable frame.
        #[serde(default)]
        tool: String,
        #[serde(default)]
        args: Value,
    },
}

/// The Standard Webhooks headers of a delivery, made with the webhook's signing secret.
#[derive(Debug, Clone, Serialize)]
pub struct Signature {
    #[serde(rename = "webhook-id")]
    pub id: String,
    #[serde(rename = "webhook-timestamp")]
    pub timestamp: String,
    #[serde(rename = "webhook-signature")]
    pub signature: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    delivery_id: &'a str,
    webhook_id: &'a str,
    provider: &'static str,
    event: Option<&'a str>,
    received_at: String,
    attempt: i64,
    verified: bool,
    headers: &'a RawValue,
    body: &'a str,
    body_encoding: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<&'a Signature>,
}

/// Encodes a `delivery` frame. It fails only on a stored row that is not what ingest
/// wrote (headers that are not a JSON object): the caller logs it and sends nothing,
/// rather than a frame that says something else.
pub fn delivery_frame(
    d: &PendingDelivery,
    attempt: i64,
    signature: Option<&Signature>,
) -> Result<String, serde_json::Error> {
    let (body, body_encoding) = encode_body(&d.body);
    // Headers were stored as a JSON object by ingest; embed them without re-parsing.
    let headers = serde_json::from_str::<&RawValue>(&d.headers)?;
    let frame = DeliveryFrame {
        kind: "delivery",
        delivery_id: d.id.as_str(),
        webhook_id: d.webhook_id.as_str(),
        provider: d.provider.as_str(),
        event: d.event.as_deref(),
        received_at: rfc3339(d.received_at),
        attempt,
        verified: d.verified,
        headers,
        body: &body,
        body_encoding,
        signature,
    };
    serde_json::to_string(&frame)
}

/// An error about a frame the hub could not act on; the socket stays open.
pub fn error_frame(code: &str, message: &str) -> String {
    serde_json::json!({"type": "error", "error": {"code": code, "message": message}}).to_string()
}

/// The answer to a `call`: the tool's result, or the same error object HTTP would answer.
pub fn result_frame(id: &str, outcome: Result<Value, ErrorDetail>) -> String {
    match outcome {
        Ok(result) => serde_json::json!({"type": "result", "id": id, "ok": true, "result": result})
            .to_string(),
        Err(error) => {
            serde_json::json!({"type": "result", "id": id, "ok": false, "error": error}).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// An agent's text frame is parsed once, here; whatever it holds, the answer is a
        /// frame or an error, never a panic.
        #[test]
        fn any_text_parses_or_errs_without_panicking(text in "\\PC{0,300}") {
            let _ = serde_json::from_str::<Inbound>(&text);
        }

        #[test]
        fn an_ack_round_trips_whatever_its_id(id in "\\PC{0,80}") {
            let frame = serde_json::json!({"type": "ack", "deliveryId": id}).to_string();
            match serde_json::from_str::<Inbound>(&frame) {
                Ok(Inbound::Ack { delivery_id }) => prop_assert_eq!(delivery_id, id),
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }

    #[test]
    fn a_delivery_whose_stored_headers_are_not_json_is_an_error_not_an_empty_frame() {
        use std::sync::Arc;

        use crate::domain::{
            ids::{AgentId, DeliveryId, WebhookId},
            Provider, SealedSecrets,
        };
        let mut d = PendingDelivery {
            queue_seq: 1,
            id: DeliveryId::generate(),
            webhook_id: WebhookId::generate(),
            agent_id: AgentId::generate(),
            provider: Provider::Github,
            event: Some("push".to_owned()),
            received_at: 0,
            verified: true,
            attempts: 0,
            headers: r#"{"x-github-event":"push"}"#.to_owned(),
            body: bytes::Bytes::from_static(b"{}"),
            secrets: Arc::new(SealedSecrets {
                signing: Vec::new(),
                previous: None,
                previous_until: None,
                provider: None,
            }),
        };
        let frame: Value = serde_json::from_str(&delivery_frame(&d, 1, None).unwrap()).unwrap();
        assert_eq!(frame["headers"]["x-github-event"], "push");
        d.headers = "not json".to_owned();
        assert!(delivery_frame(&d, 1, None).is_err());
    }
}
