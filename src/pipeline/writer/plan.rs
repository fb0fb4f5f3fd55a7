//! What one batch plans before it writes: each agent's pending count against the backlog
//! cap, and the rows, sends and acks applied in a few statements rather than one per op.

use std::{collections::HashMap, sync::Arc};

use super::REJECTED_KEPT_PER_WEBHOOK;
use crate::{
    domain::{
        ids::{AgentId, DeliveryId, WebhookId},
        AttemptEnd, BacklogCap, BodyCut, DeliveryStatus, HandlerResult, NewDelivery,
        PendingDelivery, Via,
    },
    store::{BatchWriter, BatchWrites, Failed, InsertRow, StoreError},
};

/// An agent's pending deliveries (queued or sent): how many, and their bodies' bytes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending {
    pub(super) count: i64,
    pub(super) bytes: i64,
}

impl From<(i64, i64)> for Pending {
    fn from((count, bytes): (i64, i64)) -> Self {
        Self { count, bytes }
    }
}

impl Pending {
    /// Whether one more delivery of `size` bytes fits the backlog cap, in count and bytes.
    /// A delivery larger than the byte cap fits an empty backlog, or it could never be
    /// taken.
    pub(super) fn has_room(self, cap: BacklogCap, size: i64) -> bool {
        self.count < cap.count && (self.count == 0 || self.bytes + size <= cap.bytes)
    }

    pub(super) fn plus(self, size: i64) -> Self {
        self.plus_many(1, size)
    }

    pub(super) fn plus_many(self, count: i64, bytes: i64) -> Self {
        Self {
            count: self.count + count,
            bytes: self.bytes + bytes,
        }
    }

    /// Whether `count` more deliveries of `bytes` in all fit the backlog cap.
    pub(super) fn has_room_for(self, cap: BacklogCap, count: i64, bytes: i64) -> bool {
        count == 0
            || (self.count + count <= cap.count
                && (self.count + count == 1 || self.bytes + bytes <= cap.bytes))
    }
}

/// A delivery row waiting to be inserted with the rest of its batch.
pub(super) struct Row {
    pub(super) seq: i64,
    pub(super) d: NewDelivery,
    pub(super) status: DeliveryStatus,
    pub(super) queue_seq: Option<i64>,
    pub(super) reason: Option<String>,
    pub(super) cut: Option<BodyCut>,
}

impl Row {
    /// A row numbered `next_seq`, which moves on.
    pub(super) fn new(
        next_seq: &mut i64,
        d: NewDelivery,
        status: DeliveryStatus,
        queue_seq: Option<i64>,
        reason: Option<String>,
    ) -> Self {
        let seq = *next_seq;
        *next_seq += 1;
        Self {
            seq,
            d,
            status,
            queue_seq,
            reason,
            cut: None,
        }
    }
}

/// What a batch applies in a few statements rather than one per op: new rows, send
/// markers and acks. It is applied before anything whose outcome it could change (a
/// requeue, retention) and at the end of the batch, with the commit. Until then an
/// agent's pending count may be high by the acks waiting, so the backlog cap errs on the
/// side of refusing.
#[derive(Default)]
pub(super) struct Deferred {
    /// In receipt order; routed in the same order.
    pub(super) rows: Vec<Row>,
    pub(super) sent_ids: Vec<(AgentId, Via, DeliveryId)>,
    pub(super) acks: Vec<(AgentId, DeliveryId, Option<HandlerResult>)>,
    pub(super) seen: Vec<(AgentId, i64)>,
    /// Attempts that ended unacked: applied after the sends and acks, so that an ack in
    /// the same batch wins over a give-up, and a send counts before it.
    pub(super) ends: Vec<(AgentId, AttemptEnd)>,
}

impl Deferred {
    /// Applies and clears everything waiting (and with `commit`, commits); how many acks
    /// took effect. The queued rows join `routed`, in order; the deliveries given up on,
    /// `failed`.
    pub(super) async fn apply(
        &mut self,
        conn: &mut impl BatchWriter,
        routed: &mut Vec<Arc<PendingDelivery>>,
        failed: &mut Vec<Failed>,
        pending_counts: &mut HashMap<AgentId, Pending>,
        now: i64,
        commit: bool,
    ) -> Result<u64, StoreError> {
        let rows: Vec<InsertRow> = self
            .rows
            .iter()
            .map(|r| InsertRow {
                seq: r.seq,
                d: &r.d,
                status: r.status,
                queue_seq: r.queue_seq,
                reason: r.reason.as_deref(),
                cut: r.cut.as_ref(),
            })
            .collect();
        // Rejected rows are pruned per webhook after they are in: then the batch cannot
        // end in the same round trip as its inserts.
        let mut rejected_on: Vec<&WebhookId> = self
            .rows
            .iter()
            .filter(|r| r.status == DeliveryStatus::Rejected)
            .map(|r| &r.d.webhook_id)
            .collect();
        rejected_on.sort_unstable();
        rejected_on.dedup();
        let writes = BatchWrites {
            rows: &rows,
            sent: &self.sent_ids,
            acks: &self.acks,
            seen: &self.seen,
            at: now,
        };
        // Statements after the write: then the batch cannot end in its round trip.
        let more = !rejected_on.is_empty() || !self.ends.is_empty();
        let acked_by_agent = conn.write(&writes, commit && !more).await?;
        for webhook_id in rejected_on {
            conn.prune_rejected(webhook_id, REJECTED_KEPT_PER_WEBHOOK)
                .await?;
        }
        let given_up = conn.end_attempts(&self.ends).await?;
        if commit && more {
            conn.commit().await?;
        }
        self.ends.clear();
        for f in &given_up {
            if let Some(c) = pending_counts.get_mut(&f.agent_id) {
                c.count -= 1;
                c.bytes -= f.size_bytes;
            }
        }
        failed.extend(given_up);
        drop(rows);
        self.sent_ids.clear();
        self.acks.clear();
        self.seen.clear();
        for r in self.rows.drain(..) {
            if let (DeliveryStatus::Queued, Some(seq)) = (r.status, r.queue_seq) {
                routed.push(Arc::new(PendingDelivery::from_new(r.d, seq)));
            }
        }
        let mut acked = 0;
        for (agent_id, (n, bytes)) in acked_by_agent {
            if let Some(c) = pending_counts.get_mut(&agent_id) {
                c.count -= n as i64;
                c.bytes -= bytes;
            }
            acked += n;
        }
        Ok(acked)
    }
}
