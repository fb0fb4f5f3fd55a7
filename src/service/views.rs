//! The JSON shapes the API answers with, as the spec names them. Their schemas in the
//! OpenAPI document (`GET /v1/openapi.json`) are derived from these same types.

use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::{
    clock::rfc3339,
    domain::{DeliveryStatus, Provider},
    store::{ActivityRecord, Agent, AttemptRecord, Webhook},
};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedAccount {
    pub account_id: String,
    pub name: String,
    pub token: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedAgent {
    pub agent_id: String,
    pub account_id: String,
    pub name: String,
    pub token: String,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub agent_id: String,
    pub name: String,
    pub connected: bool,
    pub last_seen_at: Option<String>,
    pub created_at: String,
    /// Deliveries waiting for the agent's ack (queued or sent).
    pub backlog_depth: i64,
    /// False once deleted: its token and webhooks no longer work; its history stays.
    pub active: bool,
}

impl AgentView {
    pub fn new(a: &Agent, connected: bool, backlog_depth: i64) -> Self {
        Self {
            agent_id: a.id.to_string(),
            name: a.name.clone(),
            connected,
            last_seen_at: a.last_seen_at.map(rfc3339),
            created_at: rfc3339(a.created_at),
            backlog_depth,
            active: a.active,
        }
    }
}

/// A deleted (deactivated) agent.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentDeactivated {
    pub agent_id: String,
    pub active: bool,
}

/// A new agent token, the only time it is shown.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedAgentToken {
    pub agent_id: String,
    /// `hh_agent_…`: the previous token stopped working with this answer.
    pub token: String,
}

/// A new owner token, the only time it is shown.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedAccountToken {
    pub account_id: String,
    /// `hh_owner_…`: the previous token stopped working with this answer.
    pub token: String,
}

/// An account as `hookhub account list` prints it: never a token.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub account_id: String,
    pub name: String,
    pub created_at: String,
}

/// The create response: exactly the seed's shape, the only time the secret is shown.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhook {
    pub webhook_id: String,
    pub url: String,
    pub signing_secret: String,
    pub name: String,
    #[schema(value_type = Provider)]
    pub provider: &'static str,
    pub active: bool,
    pub created_at: String,
}

/// A webhook as listed and read: never a secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    pub webhook_id: String,
    pub agent_id: String,
    pub url: String,
    pub name: String,
    #[schema(value_type = Provider)]
    pub provider: &'static str,
    pub active: bool,
    /// `user` when its owner made it, `agent` when the agent did.
    pub created_by: String,
    /// Stripe and Slack only: whether their secret is set, so inbound requests verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_secret_set: Option<bool>,
    pub created_at: String,
    pub updated_at: String,
}

impl WebhookView {
    pub fn new(w: &Webhook, public_url: &str) -> Self {
        Self {
            webhook_id: w.id.to_string(),
            agent_id: w.agent_id.to_string(),
            url: webhook_url(public_url, w.id.as_str()),
            name: w.name.clone(),
            provider: w.provider.as_str(),
            active: w.active,
            created_by: w.created_by.clone(),
            provider_secret_set: w
                .provider
                .uses_provider_secret()
                .then_some(w.provider_secret_set),
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
        }
    }
}

pub fn webhook_url(public_url: &str, webhook_id: &str) -> String {
    format!("{public_url}/v1/hooks/{webhook_id}")
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedSecret {
    pub webhook_id: String,
    pub signing_secret: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deactivated {
    pub webhook_id: String,
    pub active: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub delivery_id: String,
    pub webhook_id: String,
    #[schema(value_type = DeliveryStatus)]
    pub status: &'static str,
    pub event: Option<String>,
    pub received_at: String,
    pub sent_at: Option<String>,
    pub acked_at: Option<String>,
    pub attempts: i64,
    pub size_bytes: i64,
    pub verified: bool,
    /// Why a request was rejected, for debugging a misconfigured secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A rejected request keeps only the start of its body: this is the whole body's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
}

impl DeliveryView {
    pub fn new(r: &ActivityRecord) -> Self {
        Self {
            delivery_id: r.id.to_string(),
            webhook_id: r.webhook_id.to_string(),
            status: r.status.as_str(),
            event: r.event.clone(),
            received_at: rfc3339(r.received_at),
            sent_at: r.sent_at.map(rfc3339),
            acked_at: r.acked_at.map(rfc3339),
            attempts: r.attempts,
            size_bytes: r.size_bytes,
            verified: r.verified,
            reason: r.reason.clone(),
            body_sha256: r.body_sha256.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

/// One delivery with its headers and body.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub record: DeliveryView,
    /// The request's headers as received, names lower-case, repeated ones joined.
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub headers: Box<RawValue>,
    /// As received when it is UTF-8, else base64.
    pub body: String,
    /// `utf8` or `base64`: how `body` holds the bytes received.
    pub body_encoding: &'static str,
    /// `body` is only the start of what was received (`sizeBytes` long).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub body_truncated: bool,
    /// Every attempt, oldest first.
    pub history: Vec<AttemptView>,
}

/// The agent's handler's answer, as the agent reported it.
#[derive(Serialize, ToSchema)]
pub struct HandlerResultView {
    /// The HTTP status the handler answered.
    pub status: u16,
    /// How long the handler took, in milliseconds.
    pub ms: u64,
}

/// One attempt to hand a delivery over.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub attempt: i64,
    pub sent_at: Option<String>,
    /// `socket` or `mcp`; absent for an attempt that never went out (a discard).
    pub via: Option<String>,
    /// `acked`, `nacked`, `timeout`, `disconnected`, `redelivered` or `discarded`; null
    /// while the attempt is out, awaiting its ack.
    pub outcome: Option<String>,
    /// When the outcome happened.
    pub at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<HandlerResultView>,
}

impl AttemptView {
    pub fn new(a: &AttemptRecord) -> Self {
        Self {
            attempt: a.attempt,
            sent_at: a.sent_at.map(rfc3339),
            via: a.via.clone(),
            outcome: a.outcome.clone(),
            at: a.at.map(rfc3339),
            reason: a.reason.clone(),
            result: a.result.map(|r| HandlerResultView {
                status: r.status,
                ms: r.ms,
            }),
        }
    }
}
