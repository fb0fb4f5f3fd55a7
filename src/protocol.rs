//! The JSON frames of the agent socket (`GET /v1/agent/connect`).

use serde::{Deserialize, Serialize};
use serde_json::{value::RawValue, Value};

use crate::{
    clock::rfc3339, error::ErrorDetail, service::views::encode_body, store::PendingDelivery,
};

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

/// Encodes a `delivery` frame.
pub fn delivery_frame(d: &PendingDelivery, attempt: i64, signature: Option<&Signature>) -> String {
    let (body, body_encoding) = encode_body(&d.body);
    // Headers were stored as a JSON object by ingest; embed them without re-parsing.
    let headers = serde_json::from_str::<&RawValue>(&d.headers).unwrap_or(RawValue::NULL);
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
    serde_json::to_string(&frame).unwrap_or_default()
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
}
