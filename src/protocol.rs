//! The JSON frames of the agent socket (`GET /v1/agent/connect`), both ways. The hub
//! encodes what it sends and decodes what agents send with these types; `hookhub listen`
//! ([`crate::client`]) does the reverse with the same ones.
//!
//! What the hub sends borrows from what it has (the stored row, the signature), so that a
//! delivery, tens of thousands a second, is encoded without copying its body or its
//! headers; an agent decodes into the owned form (`DeliveryFrame<'static>`).
//!
//! A hub → agent frame carries its `type` as the serde tag of its own struct, not as a
//! variant of one enum: serde reads an internally tagged enum by buffering the frame
//! first, and a delivery's headers, a [`RawValue`], cannot come out of that buffer. So an
//! agent asks [`HubFrameType::of`] which frame it has, then decodes that one. Agent → hub
//! frames hold nothing raw, and are one enum, [`AgentFrame`].

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{value::RawValue, Map, Value};

use base64::{engine::general_purpose::STANDARD, Engine};

use crate::{clock::rfc3339, domain::PendingDelivery};

/// The error object of every failure, the same over HTTP (`{"error": …}`) and in a
/// `result` or `error` frame: a stable `code`, a message for people, the `field` at fault
/// if any. The hub's own errors name their code and field with static text; a frame holds
/// them as [`Cow`], which is also what an agent decodes them into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(
    bound = "",
    description = "What went wrong: a stable `code`, a message for people, the `field` at fault if any."
)]
pub struct ErrorDetail<Text = &'static str> {
    /// Stable, for programs: `unauthorized`, `not_found`, `invalid_request`, `conflict`,
    /// `payload_too_large`, `rate_limited`, `request_timeout`, `backlog_full`,
    /// `invalid_signature`, `forbidden_origin`, `unavailable`, `storage_unavailable`,
    /// `internal`.
    #[schema(value_type = String)]
    pub code: Text,
    /// For people; it may change between versions.
    pub message: String,
    /// The input at fault (a body field, a query parameter, `body`, `content-type`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub field: Option<Text>,
}

/// A body as text when it is UTF-8, else base64: `(body, bodyEncoding)`.
pub fn encode_body(body: &[u8]) -> (Cow<'_, str>, &'static str) {
    match std::str::from_utf8(body) {
        Ok(s) => (s.into(), "utf8"),
        Err(_) => (STANDARD.encode(body).into(), "base64"),
    }
}

/// Close code for a socket replaced by a newer connection of the same agent: the client
/// should not reconnect, or the two would replace each other forever.
pub const CLOSE_REPLACED: u16 = 4000;

/// Close code for a socket whose token was rotated or whose agent was deleted: the token
/// it opened with no longer works, so reconnecting with it is pointless.
pub const CLOSE_REVOKED: u16 = 4001;

/// What the agent's own handler answered, reported with an ack or a nack for the
/// delivery's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultReport {
    pub status: u16,
    pub ms: u64,
}

impl ResultReport {
    /// As the domain keeps it, if `status` is an HTTP status (100 to 599).
    pub fn checked(self) -> Option<crate::domain::HandlerResult> {
        (100..=599)
            .contains(&self.status)
            .then_some(crate::domain::HandlerResult {
                status: self.status,
                ms: self.ms,
            })
    }
}

/// The longest nack `reason` kept, in characters; the rest is cut.
pub const MAX_NACK_REASON: usize = 1000;

fn requeue_by_default() -> bool {
    true
}

/// Agent → hub.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum AgentFrame {
    Ack {
        #[serde(rename = "deliveryId")]
        delivery_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<ResultReport>,
    },
    /// Not handled: with `requeue` (the default) to be handed out again after a backoff,
    /// without it to be given up on (`failed`) at once.
    Nack {
        #[serde(rename = "deliveryId")]
        delivery_id: String,
        #[serde(default = "requeue_by_default")]
        requeue: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<ResultReport>,
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

/// The `type` of a hub → agent frame: which of [`DeliveryFrame`], [`ResultFrame`] and
/// [`ErrorFrame`] to decode it as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HubFrameType {
    Delivery,
    Result,
    Error,
}

impl HubFrameType {
    /// `None` for text that is not JSON, has no `type`, or one this build does not know (a
    /// newer hub's).
    pub fn of(text: &str) -> Option<Self> {
        #[derive(Deserialize)]
        struct Tagged {
            #[serde(rename = "type")]
            kind: HubFrameType,
        }
        serde_json::from_str::<Tagged>(text).ok().map(|t| t.kind)
    }
}

/// The Standard Webhooks headers of a delivery, made with the webhook's signing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    #[serde(rename = "webhook-id")]
    pub id: String,
    #[serde(rename = "webhook-timestamp")]
    pub timestamp: String,
    #[serde(rename = "webhook-signature")]
    pub signature: String,
}

/// Hub → agent: one delivery of an event to the agent, sent again until it is acked.
///
/// A delivery cannot go without its id, its webhook and its body; the other fields default
/// when missing, so that `listen` still takes the deliveries of a hub older or newer than
/// itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename = "delivery", rename_all = "camelCase")]
pub struct DeliveryFrame<'a> {
    pub delivery_id: Cow<'a, str>,
    pub webhook_id: Cow<'a, str>,
    /// Whose headers these are; one this build does not know forwards none of its own.
    #[serde(default)]
    pub provider: Cow<'a, str>,
    pub event: Option<Cow<'a, str>>,
    /// RFC 3339.
    #[serde(default)]
    pub received_at: String,
    #[serde(default)]
    pub attempt: i64,
    #[serde(default)]
    pub verified: bool,
    /// The request's headers, an object of names to values, as ingest stored it.
    #[serde(default = "no_headers")]
    pub headers: Cow<'a, RawValue>,
    pub body: Cow<'a, str>,
    /// `utf8` or `base64`. Text rather than an enum, so that a frame with an encoding this
    /// build does not know still reads, and [`DeliveryFrame::body_bytes`] refuses it by name.
    pub body_encoding: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Cow<'a, Signature>>,
}

fn no_headers() -> Cow<'static, RawValue> {
    Cow::Borrowed(RawValue::NULL)
}

impl DeliveryFrame<'_> {
    /// The body's bytes exactly as the provider sent them.
    pub fn body_bytes(&self) -> Result<Vec<u8>, String> {
        match &*self.body_encoding {
            "utf8" => Ok(self.body.as_bytes().to_vec()),
            "base64" => STANDARD
                .decode(&*self.body)
                .map_err(|e| format!("the body is not valid base64: {e}")),
            other => Err(format!("unknown bodyEncoding `{other}`")),
        }
    }

    /// The headers, by name; none if the frame has none.
    pub fn header_map(&self) -> Result<Map<String, Value>, serde_json::Error> {
        let headers: Option<Map<String, Value>> = serde_json::from_str(self.headers.get())?;
        Ok(headers.unwrap_or_default())
    }
}

/// Hub → agent: the answer to a `call`, under the call's `id`: the tool's `result`, or the
/// `error` HTTP would answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "result")]
pub struct ResultFrame<'a> {
    pub id: Cow<'a, str>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail<Cow<'a, str>>>,
}

/// Hub → agent: a frame the hub could not act on; the socket stays open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "error")]
pub struct ErrorFrame<'a> {
    pub error: ErrorDetail<Cow<'a, str>>,
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
    serde_json::to_string(&DeliveryFrame {
        delivery_id: d.id.as_str().into(),
        webhook_id: d.webhook_id.as_str().into(),
        provider: d.provider.as_str().into(),
        event: d.event.as_deref().map(Cow::Borrowed),
        received_at: rfc3339(d.received_at),
        attempt,
        verified: d.verified,
        headers: Cow::Borrowed(headers),
        body,
        body_encoding: body_encoding.into(),
        signature: signature.map(Cow::Borrowed),
    })
}

/// An error about a frame the hub could not act on; the socket stays open. Text always
/// encodes: the `Result` is serde_json's signature, not a failure to expect.
pub fn error_frame(code: &str, message: &str) -> Result<String, serde_json::Error> {
    serde_json::to_string(&ErrorFrame {
        error: ErrorDetail {
            code: code.into(),
            message: message.to_owned(),
            field: None,
        },
    })
}

/// The answer to a `call`: the tool's result, or the same error object HTTP would answer.
/// Like [`error_frame`]'s, its `Result` is only serde_json's: a [`Value`] always encodes.
pub fn result_frame(
    id: &str,
    outcome: Result<Value, ErrorDetail>,
) -> Result<String, serde_json::Error> {
    let (result, error) = match outcome {
        Ok(result) => (Some(result), None),
        Err(e) => (
            None,
            Some(ErrorDetail {
                code: e.code.into(),
                message: e.message,
                field: e.field.map(Cow::Borrowed),
            }),
        ),
    };
    serde_json::to_string(&ResultFrame {
        id: id.into(),
        ok: error.is_none(),
        result,
        error,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::domain::{
        ids::{AgentId, DeliveryId, WebhookId},
        Provider, SealedSecrets,
    };

    fn pending(body: &[u8], event: Option<&str>) -> PendingDelivery {
        PendingDelivery {
            queue_seq: 1,
            id: DeliveryId::generate(),
            webhook_id: WebhookId::generate(),
            agent_id: AgentId::generate(),
            provider: Provider::Github,
            event: event.map(str::to_owned),
            received_at: 1_700_000_000_123,
            verified: true,
            attempts: 0,
            attempt_base: 0,
            headers: r#"{"x-github-event":"push","content-type":"application/json"}"#.to_owned(),
            body: bytes::Bytes::copy_from_slice(body),
            secrets: Arc::new(SealedSecrets {
                signing: Vec::new(),
                previous: None,
                previous_until: None,
                provider: None,
            }),
        }
    }

    fn signature(d: &PendingDelivery) -> Signature {
        Signature {
            id: d.id.to_string(),
            timestamp: "1700000000".to_owned(),
            signature: "v1,c2lnbmF0dXJl".to_owned(),
        }
    }

    /// Encodes with the hub's function and decodes with the agent's type.
    fn round_trip(
        d: &PendingDelivery,
        signature: Option<&Signature>,
    ) -> (Value, DeliveryFrame<'static>) {
        let text = delivery_frame(d, 3, signature).unwrap();
        assert_eq!(HubFrameType::of(&text), Some(HubFrameType::Delivery));
        let wire: Value = serde_json::from_str(&text).unwrap();
        (wire, serde_json::from_str(&text).unwrap())
    }

    fn assert_same_delivery(
        d: &PendingDelivery,
        signature: Option<&Signature>,
        got: &DeliveryFrame<'_>,
    ) {
        assert_eq!(got.delivery_id, d.id.as_str());
        assert_eq!(got.webhook_id, d.webhook_id.as_str());
        assert_eq!(got.provider, d.provider.as_str());
        assert_eq!(got.event.as_deref(), d.event.as_deref());
        assert_eq!(got.received_at, rfc3339(d.received_at));
        assert_eq!(got.attempt, 3);
        assert_eq!(got.verified, d.verified);
        let stored: Map<String, Value> = serde_json::from_str(&d.headers).unwrap();
        assert_eq!(got.header_map().unwrap(), stored);
        assert_eq!(got.body_bytes().unwrap(), d.body);
        assert_eq!(got.signature.as_deref(), signature);
    }

    proptest! {
        /// An agent's text frame is parsed once, here; whatever it holds, the answer is a
        /// frame or an error, never a panic.
        #[test]
        fn any_text_parses_or_errs_without_panicking(text in "\\PC{0,300}") {
            let _ = serde_json::from_str::<AgentFrame>(&text);
        }

        #[test]
        fn an_ack_round_trips_whatever_its_id(id in "\\PC{0,80}") {
            let frame = serde_json::json!({"type": "ack", "deliveryId": id}).to_string();
            match serde_json::from_str::<AgentFrame>(&frame) {
                Ok(AgentFrame::Ack { delivery_id, result: None }) => prop_assert_eq!(delivery_id, id),
                other => prop_assert!(false, "{:?}", other),
            }
        }

        /// The ack `listen` sends is the frame the hub reads.
        #[test]
        fn an_ack_the_agent_encodes_is_the_one_the_hub_reads(id in "\\PC{0,80}") {
            let ack = AgentFrame::Ack { delivery_id: id.clone(), result: None };
            let text = serde_json::to_string(&ack).unwrap();
            let wire: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(wire, json!({"type": "ack", "deliveryId": id}));
            prop_assert_eq!(serde_json::from_str::<AgentFrame>(&text).unwrap(), ack);
        }

        #[test]
        fn any_body_and_event_round_trip(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            event in proptest::option::of("\\PC{0,30}"),
            signed in any::<bool>(),
        ) {
            let d = pending(&body, event.as_deref());
            let signature = signed.then(|| signature(&d));
            let (_, got) = round_trip(&d, signature.as_ref());
            assert_same_delivery(&d, signature.as_ref(), &got);
        }
    }

    #[test]
    fn a_delivery_round_trips_utf8_and_base64_signed_or_not() {
        let utf8 = r#"{"ref":"refs/heads/main","note":"héllo"}"#.as_bytes();
        let binary = [0xff, 0x00, 0x10, 0x80, b'{'];
        for (body, encoding) in [(utf8, "utf8"), (&binary[..], "base64")] {
            for signed in [false, true] {
                let d = pending(body, Some("push"));
                let signature = signed.then(|| signature(&d));
                let (wire, got) = round_trip(&d, signature.as_ref());
                assert_same_delivery(&d, signature.as_ref(), &got);
                assert_eq!(got.body_encoding, encoding);
                assert_eq!(wire["type"], "delivery");
                assert_eq!(wire["bodyEncoding"], encoding);
                let mut keys: Vec<&str> = wire
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                keys.sort_unstable();
                let mut want = vec![
                    "attempt",
                    "body",
                    "bodyEncoding",
                    "deliveryId",
                    "event",
                    "headers",
                    "provider",
                    "receivedAt",
                    "type",
                    "verified",
                    "webhookId",
                ];
                if signed {
                    want.push("signature");
                    want.sort_unstable();
                }
                assert_eq!(keys, want, "{encoding}, signed: {signed}");
            }
        }
    }

    #[test]
    fn result_and_error_frames_decode_to_what_the_hub_sent() {
        let ok = result_frame("c1", Ok(json!({"webhooks": []}))).unwrap();
        assert_eq!(HubFrameType::of(&ok), Some(HubFrameType::Result));
        assert_eq!(
            serde_json::from_str::<Value>(&ok).unwrap(),
            json!({"type": "result", "id": "c1", "ok": true, "result": {"webhooks": []}})
        );
        let ok: ResultFrame<'static> = serde_json::from_str(&ok).unwrap();
        assert_eq!((&*ok.id, ok.ok), ("c1", true));
        assert_eq!(ok.result, Some(json!({"webhooks": []})));
        assert_eq!(ok.error, None);

        let refused = ErrorDetail {
            code: "invalid_request",
            message: "`name` is required".to_owned(),
            field: Some("name"),
        };
        let failed = result_frame("c2", Err(refused)).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&failed).unwrap(),
            json!({"type": "result", "id": "c2", "ok": false, "error": {
                "code": "invalid_request", "message": "`name` is required", "field": "name"
            }})
        );
        let failed: ResultFrame<'static> = serde_json::from_str(&failed).unwrap();
        assert!(!failed.ok);
        assert_eq!(failed.result, None);
        let error = failed.error.unwrap();
        assert_eq!(
            (&*error.code, error.field.as_deref()),
            ("invalid_request", Some("name"))
        );

        let error = error_frame("invalid_frame", "frames are JSON text, not binary").unwrap();
        assert_eq!(HubFrameType::of(&error), Some(HubFrameType::Error));
        assert_eq!(
            serde_json::from_str::<Value>(&error).unwrap(),
            json!({"type": "error", "error": {
                "code": "invalid_frame", "message": "frames are JSON text, not binary"
            }})
        );
        let error: ErrorFrame<'static> = serde_json::from_str(&error).unwrap();
        assert_eq!(error.error.code, "invalid_frame");
        assert_eq!(error.error.field, None);
    }

    #[test]
    fn a_frame_of_no_type_or_an_unknown_one_has_no_hub_frame_type() {
        for text in [
            "",
            "not json",
            "[]",
            r#"{"deliveryId":"dlv_1"}"#,
            r#"{"type":"hello"}"#,
            r#"{"type":7}"#,
        ] {
            assert_eq!(HubFrameType::of(text), None, "{text}");
        }
    }

    #[test]
    fn a_delivery_whose_stored_headers_are_not_json_is_an_error_not_an_empty_frame() {
        let mut d = pending(b"{}", Some("push"));
        let frame: Value = serde_json::from_str(&delivery_frame(&d, 1, None).unwrap()).unwrap();
        assert_eq!(frame["headers"]["x-github-event"], "push");
        d.headers = "not json".to_owned();
        assert!(delivery_frame(&d, 1, None).is_err());
    }

    /// The protocol page is the contract agent builders read: every frame type and the
    /// close code of our own must be on it.
    #[test]
    fn the_protocol_page_documents_every_frame() {
        let page = include_str!("../docs/agent-protocol.md");
        for kind in ["delivery", "result", "error", "ack", "call"] {
            assert!(
                page.contains(&format!("### `{kind}`")),
                "no section for `{kind}`"
            );
        }
        assert!(page.contains(&format!("| {CLOSE_REPLACED} |")));
        assert!(page.contains(&format!("| {CLOSE_REVOKED} |")));
    }
}
