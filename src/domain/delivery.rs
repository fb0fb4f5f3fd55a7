//! Deliveries as every layer sees them: what ingest hands the writer, what a session
//! sends, what a commit decided.

use std::sync::Arc;

use bytes::Bytes;

use super::{
    ids::{AgentId, DeliveryId, WebhookId},
    Provider, SealedSecrets,
};

/// Where a delivery is: `queued` for its agent, `sent` on its socket, `acked` by it; or
/// never for the agent (`rejected` by verification, a `duplicate` of an earlier one), or
/// `expired` unacked past the retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Queued,
    Sent,
    Acked,
    Rejected,
    Duplicate,
    Expired,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 6] = [
        Self::Queued,
        Self::Sent,
        Self::Acked,
        Self::Rejected,
        Self::Duplicate,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Acked => "acked",
            Self::Rejected => "rejected",
            Self::Duplicate => "duplicate",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A delivery received on a webhook, before it is committed.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub agent_id: AgentId,
    pub provider: Provider,
    pub event: Option<String>,
    pub provider_delivery_id: Option<String>,
    pub verified: bool,
    pub received_at: i64,
    /// A JSON object of header name to value.
    pub headers: String,
    pub body: Bytes,
    /// The webhook's secrets, sealed, for signing the frame that carries it.
    pub secrets: Arc<SealedSecrets>,
}

/// A delivery waiting for its agent's ack: what an agent session sends.
#[derive(Clone, Debug)]
pub struct PendingDelivery {
    /// Position in the agent's queue; sessions send in this order.
    pub queue_seq: i64,
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub agent_id: AgentId,
    pub provider: Provider,
    pub event: Option<String>,
    pub received_at: i64,
    pub verified: bool,
    /// Sends made before this copy was loaded.
    pub attempts: i64,
    pub headers: String,
    pub body: Bytes,
    pub secrets: Arc<SealedSecrets>,
}

impl PendingDelivery {
    pub fn from_new(d: NewDelivery, queue_seq: i64) -> Self {
        Self {
            queue_seq,
            id: d.id,
            webhook_id: d.webhook_id,
            agent_id: d.agent_id,
            provider: d.provider,
            event: d.event,
            received_at: d.received_at,
            verified: d.verified,
            attempts: 0,
            headers: d.headers,
            body: d.body,
            secrets: d.secrets,
        }
    }
}

/// What a stored body that was cut short still says about the whole one.
#[derive(Debug, Clone)]
pub struct BodyCut {
    pub size_bytes: i64,
    /// Hex SHA-256 of the whole body.
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequeueOutcome {
    Queued,
    /// Not this owner's, or never for the agent (rejected, duplicate).
    NotFound,
    /// It is not pending, so queueing it again would add to a full backlog.
    BacklogFull,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    Queued(DeliveryId),
    /// Seen before on this webhook: the original delivery's id.
    Duplicate(DeliveryId),
    BacklogFull,
}

/// The most one agent may have pending: deliveries, and their bodies' bytes.
#[derive(Clone, Copy, Debug)]
pub struct BacklogCap {
    pub count: i64,
    pub bytes: i64,
}

/// The durable queue as of a scrape: pending (queued or sent) deliveries of every agent.
#[derive(Clone, Copy, Debug, Default)]
pub struct BacklogSnapshot {
    pub depth: i64,
    /// Receipt time (ms since the epoch) of the oldest pending delivery.
    pub oldest_received_at: Option<i64>,
}
