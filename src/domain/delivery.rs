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
/// `expired` unacked past the retention, or `failed`: given up on (nacked without
/// requeue, out of attempts, or discarded), kept and redeliverable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Queued,
    Sent,
    Acked,
    Rejected,
    Duplicate,
    Expired,
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 7] = [
        Self::Queued,
        Self::Sent,
        Self::Acked,
        Self::Rejected,
        Self::Duplicate,
        Self::Expired,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Acked => "acked",
            Self::Rejected => "rejected",
            Self::Duplicate => "duplicate",
            Self::Expired => "expired",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// How an attempt was handed out: on the agent's socket, or by MCP's `next_events`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Socket,
    Mcp,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Socket => "socket",
            Self::Mcp => "mcp",
        }
    }
}

/// What the agent's own handler answered, as the agent reports it with an ack or a nack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandlerResult {
    /// An HTTP status, 100 to 599.
    pub status: u16,
    pub ms: u64,
}

/// How an attempt that was not acked ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Nacked,
    /// Unacked for the ack timeout (on a socket, or a lapsed MCP lease).
    Timeout,
    /// The socket ended with it unacked.
    Disconnected,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nacked => "nacked",
            Self::Timeout => "timeout",
            Self::Disconnected => "disconnected",
        }
    }
}

/// Why a delivery was given up on; the metric's label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// The agent nacked it without requeue.
    Nacked,
    /// Handed out `max_attempts` times without an ack.
    MaxAttempts(i64),
    Discarded,
}

impl FailReason {
    pub fn label(self) -> &'static str {
        match self {
            Self::Nacked => "nacked",
            Self::MaxAttempts(_) => "max_attempts",
            Self::Discarded => "discarded",
        }
    }
}

/// An attempt that ended without an ack, as the session or the pull side saw it end;
/// with `fail`, the delivery is given up on.
#[derive(Clone, Debug)]
pub struct AttemptEnd {
    pub id: DeliveryId,
    /// `None`: the delivery's stored attempt count (a nack of a delivery this consumer
    /// did not hand out).
    pub attempt: Option<i64>,
    pub via: Via,
    /// Wall-clock ms of the send.
    pub sent_at: Option<i64>,
    pub outcome: AttemptOutcome,
    pub at: i64,
    /// The agent's words, with a nack.
    pub reason: Option<String>,
    pub result: Option<HandlerResult>,
    pub fail: Option<FailReason>,
}

impl AttemptEnd {
    /// The `reason` a failed delivery shows.
    pub fn failed_reason(&self) -> Option<String> {
        let fail = self.fail?;
        Some(match fail {
            FailReason::Nacked => match &self.reason {
                Some(r) if !r.is_empty() => format!("nacked: {r}"),
                _ => "nacked".to_owned(),
            },
            FailReason::MaxAttempts(n) => format!("gave up after {n} attempts"),
            FailReason::Discarded => "discarded".to_owned(),
        })
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
    /// `attempts` when it was last queued again by hand: the attempt limit counts from it.
    pub attempt_base: i64,
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
            attempt_base: 0,
            headers: d.headers,
            body: d.body,
            secrets: d.secrets,
        }
    }
}

/// Whether a delivery has been handed out `attempt` times with `max` allowed since its
/// `base` (0: no limit): then it is given up on rather than handed out again.
pub fn out_of_attempts(attempt: i64, base: i64, max: u32) -> bool {
    max > 0 && attempt - base >= i64::from(max)
}

/// What a stored body that was cut short still says about the whole one.
#[derive(Debug, Clone)]
pub struct BodyCut {
    pub size_bytes: i64,
    /// Hex SHA-256 of the whole body.
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardOutcome {
    /// It is `failed` ("discarded") now, or was failed already.
    Failed,
    NotFound,
    /// It was acked or expired: there is nothing to give up on.
    Finished(DeliveryStatus),
}

/// Which of a webhook's deliveries a bulk redeliver takes, in receipt order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedeliverFilter {
    /// Some of `acked`, `failed`, `expired`.
    pub statuses: Vec<DeliveryStatus>,
    pub event: Option<String>,
    /// Received at or after, ms.
    pub since: Option<i64>,
    /// Received before, ms.
    pub until: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkRequeueOutcome {
    Matched(u64),
    Requeued(u64),
    /// Queueing them would pass the agent's backlog cap; nothing was queued.
    BacklogFull(u64),
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
