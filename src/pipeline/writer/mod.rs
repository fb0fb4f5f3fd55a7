//! The delivery writer: the only writer to the `deliveries` table.
//!
//! Group commit: it takes every operation waiting at that moment (up to a bound), applies
//! them in one `BEGIN IMMEDIATE … COMMIT` with `synchronous=FULL`, and only then answers
//! each waiting request. While one batch is on its way to disk, the next one gathers, so
//! the batch grows with the load and the fsync rate stops being the ingest rate.
//!
//! Being the only inserter, it also owns the things that must be decided atomically with
//! the insert: the per-agent backlog cap, duplicate detection, and queue positions.
//!
//! Each commit wakes the store's housekeeping (`Store::start_housekeeping`; for SQLite, a
//! checkpointer on a connection of its own, so that copying the WAL never happens inside
//! a commit).
//!
//! This file is the handle the rest of the hub holds; `task.rs` is the task that gathers
//! and commits batches, `plan.rs` what a batch works out before it writes.
//!
//! It also knows whether writing works: a failed commit (a full disk, say) marks it
//! failing, the next commit that writes clears that, and while it is failing
//! [`DeliveryWriter::health`] tries a small write of its own, so that `/healthz` sees the
//! recovery even when nothing else is written.

use std::{future::Future, sync::Arc, time::Duration};

use actix::Addr;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    clock,
    domain::{
        ids::{AgentId, DeliveryId, WebhookId},
        AttemptEnd, BacklogCap, BodyCut, BulkRequeueOutcome, DiscardOutcome, HandlerResult,
        IngestOutcome, NewDelivery, RedeliverFilter, RequeueOutcome, Via,
    },
    metrics::Metrics,
    pipeline::registry::Registry,
    store::{BatchWriter, OwnedAgent, Store, StoreError},
};

mod plan;
mod task;

use task::WriterTask;

/// Most operations in one transaction.
const MAX_BATCH: usize = 1024;
/// Most body bytes in one transaction, so that a burst of large bodies commits in parts.
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// How long a batch of only acks and sends waits for company before it commits alone.
/// Nobody waits for them and losing one costs only a resend, so a commit (an fsync) of
/// their own buys nothing, and it delays the next ingest that arrives while it runs.
const LINGER: Duration = Duration::from_millis(10);
/// Rejected requests kept per webhook, newest first. Each keeps its headers and at most
/// [`crate::service::ingest::REJECTED_BODY_KEPT`] of its body, so this bounds what senders
/// failing verification can add to the data directory, per webhook.
pub const REJECTED_KEPT_PER_WEBHOOK: i64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The commit failed; nothing in its batch was stored.
    #[error("the delivery could not be stored: {0}")]
    Failed(String),
    /// The writer's task has ended, as it does when the hub's runtime shuts down.
    #[error("the delivery writer has stopped")]
    Stopped,
}

/// Why commits are failing, in words anyone may see; `None` while they succeed.
type Health = Option<Arc<str>>;

enum Op {
    Ingest(
        NewDelivery,
        oneshot::Sender<Result<IngestOutcome, WriteError>>,
    ),
    Reject(
        NewDelivery,
        String,
        BodyCut,
        oneshot::Sender<Result<(), WriteError>>,
    ),
    Ack(AgentId, DeliveryId, Option<HandlerResult>),
    Sent(AgentId, Via, Vec<DeliveryId>),
    /// An attempt ended without an ack (and perhaps gave up on its delivery).
    Ended(AgentId, AttemptEnd),
    /// An agent connected or disconnected at this time (`agents.last_seen_at`).
    Seen(AgentId, i64),
    Requeue {
        owner: OwnedAgent,
        webhook_id: WebhookId,
        id: DeliveryId,
        reply: oneshot::Sender<Result<RequeueOutcome, WriteError>>,
    },
    Discard {
        owner: OwnedAgent,
        webhook_id: WebhookId,
        id: DeliveryId,
        reply: oneshot::Sender<Result<DiscardOutcome, WriteError>>,
    },
    RequeueMatching {
        owner: OwnedAgent,
        webhook_id: WebhookId,
        filter: RedeliverFilter,
        dry_run: bool,
        reply: oneshot::Sender<Result<BulkRequeueOutcome, WriteError>>,
    },
    Retention {
        cutoff: i64,
        expired_cutoff: i64,
        reply: oneshot::Sender<Result<(u64, u64), WriteError>>,
    },
    Barrier(oneshot::Sender<()>),
    /// A small write, committed with the batch it joins; answered once the batch is done
    /// either way, the outcome being in the health state.
    Probe(oneshot::Sender<()>),
}

impl Op {
    /// Someone is waiting for this op's commit.
    fn is_awaited(&self) -> bool {
        !matches!(
            self,
            Op::Ack(..) | Op::Sent(..) | Op::Seen(..) | Op::Ended(..)
        )
    }

    fn body_len(&self) -> usize {
        match self {
            Op::Ingest(d, _) | Op::Reject(d, ..) => d.body.len(),
            _ => 0,
        }
    }
}

/// A handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct DeliveryWriter {
    tx: mpsc::Sender<Op>,
    health: watch::Receiver<Health>,
}

impl DeliveryWriter {
    /// Starts the writer task on the current runtime.
    pub async fn start(
        store: &Store,
        registry: Addr<Registry>,
        backlog_cap: BacklogCap,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let mut conn = store.batch_writer().await?;
        let (max_seq, max_queue_seq) = conn.max_seqs().await?;
        let committed = store.start_housekeeping().await?;
        let (tx, rx) = mpsc::channel(8192);
        let (health_tx, health) = watch::channel(None);
        let task = WriterTask::new(
            conn,
            rx,
            registry,
            backlog_cap,
            (max_seq + 1, max_queue_seq + 1),
            metrics,
            committed,
            health_tx,
        );
        // A thread of its own: the writer's SQLite connection runs every statement on the
        // thread that calls it, and a commit waits for the disk there, so none of that may
        // hold up a runtime thread serving requests. Its runtime only waits for ops and
        // times the linger.
        std::thread::Builder::new()
            .name("delivery-writer".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(task.run()),
                    Err(e) => tracing::error!(error = %e, "the delivery writer could not start"),
                }
            })?;
        Ok(Self { tx, health })
    }

    /// Commits a delivery for its agent; answers once it is durable.
    pub async fn ingest(&self, d: NewDelivery) -> Result<IngestOutcome, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Op::Ingest(d, reply)).await?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }

    /// Records a request that failed verification; it never reaches the agent. `d.body`
    /// is the start of the body that is kept, `cut` says what the whole body was.
    pub async fn reject(
        &self,
        d: NewDelivery,
        reason: String,
        cut: BodyCut,
    ) -> Result<(), WriteError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Op::Reject(d, reason, cut, reply)).await?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }

    /// Queues `id` again at the end of its agent's queue, within the backlog cap.
    pub async fn requeue(
        &self,
        owner: OwnedAgent,
        webhook_id: WebhookId,
        id: DeliveryId,
    ) -> Result<RequeueOutcome, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Op::Requeue {
            owner,
            webhook_id,
            id,
            reply,
        })
        .await?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }

    /// Gives up on a delivery at its owner's word (`failed`, "discarded"); idempotent.
    pub async fn discard(
        &self,
        owner: OwnedAgent,
        webhook_id: WebhookId,
        id: DeliveryId,
    ) -> Result<DiscardOutcome, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Op::Discard {
            owner,
            webhook_id,
            id,
            reply,
        })
        .await?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }

    /// Queues again, in receipt order, every delivery of the webhook that `filter` takes,
    /// if they all fit the backlog cap; with `dry_run`, only counts them.
    pub async fn requeue_matching(
        &self,
        owner: OwnedAgent,
        webhook_id: WebhookId,
        filter: RedeliverFilter,
        dry_run: bool,
    ) -> Result<BulkRequeueOutcome, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Op::RequeueMatching {
            owner,
            webhook_id,
            filter,
            dry_run,
            reply,
        })
        .await?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }

    pub async fn apply_retention(&self, retention: Duration) -> Result<(u64, u64), WriteError> {
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = clock::now_ms().saturating_sub(retention_ms);
        let (reply, rx) = oneshot::channel();
        self.submit(Op::Retention {
            cutoff,
            expired_cutoff: cutoff.saturating_sub(retention_ms),
            reply,
        })
        .await?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }

    /// Resolves once everything queued before it is committed (or failed): a new session
    /// waits for this before reading the backlog, so that acks and sends recorded by the
    /// connection it replaces are in the rows it reads.
    pub async fn barrier(&self) {
        let (reply, rx) = oneshot::channel();
        if self.submit(Op::Barrier(reply)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// `Ok` while commits succeed; else why they fail, fit for anyone to see. After a
    /// failed commit it first tries a small write (see [`BatchWriter::probe`]), so that a hub
    /// with nothing else to write still finds out when writing works again.
    pub async fn health(&self) -> Result<(), Arc<str>> {
        if self.health.borrow().is_none() {
            return Ok(());
        }
        let (reply, rx) = oneshot::channel();
        let stopped = || Arc::from(WriteError::Stopped.to_string());
        self.submit(Op::Probe(reply)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?;
        let failing = self.health.borrow().clone();
        match failing {
            None => Ok(()),
            Some(reason) => Err(reason),
        }
    }

    /// Records an ack. Nobody waits for its commit, so it is only queued; when the queue
    /// is full, what comes back is the wait for room, which the session sits out before it
    /// reads more from its socket: a flood of acks is held back by the agent's TCP window,
    /// not by the hub's memory.
    #[must_use = "a full queue hands back a wait that must be awaited"]
    pub fn ack(
        &self,
        agent_id: AgentId,
        id: DeliveryId,
        result: Option<HandlerResult>,
    ) -> Option<impl Future<Output = ()>> {
        self.queue(Op::Ack(agent_id, id, result))
    }

    /// Records that deliveries were sent; queued like [`DeliveryWriter::ack`].
    #[must_use = "a full queue hands back a wait that must be awaited"]
    pub fn sent(
        &self,
        agent_id: AgentId,
        via: Via,
        ids: Vec<DeliveryId>,
    ) -> Option<impl Future<Output = ()>> {
        if ids.is_empty() {
            return None;
        }
        self.queue(Op::Sent(agent_id, via, ids))
    }

    /// Records an attempt that ended without an ack; queued like [`DeliveryWriter::ack`].
    #[must_use = "a full queue hands back a wait that must be awaited"]
    pub fn ended(&self, agent_id: AgentId, end: AttemptEnd) -> Option<impl Future<Output = ()>> {
        self.queue(Op::Ended(agent_id, end))
    }

    /// Records that an agent was seen now (it connected, or its socket ended). Nobody
    /// waits for it: it rides with the next batch, so that a few thousand agents
    /// reconnecting at once (a restart) cost one commit per batch rather than a commit,
    /// and an fsync, each.
    pub fn seen(&self, agent_id: AgentId) {
        // A full queue drops it: a last-seen time is a hint, and the next one replaces it.
        let _ = self.tx.try_send(Op::Seen(agent_id, clock::now_ms()));
    }

    fn queue(&self, op: Op) -> Option<impl Future<Output = ()>> {
        match self.tx.try_send(op) {
            // Closed: the hub is stopping, and the op would be lost with the writer anyway.
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => None,
            Err(mpsc::error::TrySendError::Full(op)) => {
                let tx = self.tx.clone();
                Some(async move {
                    let _ = tx.send(op).await;
                })
            }
        }
    }

    async fn submit(&self, op: Op) -> Result<(), WriteError> {
        self.tx.send(op).await.map_err(|_| WriteError::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handle on a queue of one, with the receiving end the test holds.
    fn handle() -> (DeliveryWriter, mpsc::Receiver<Op>) {
        let (tx, rx) = mpsc::channel(1);
        let (_health_tx, health) = watch::channel(None);
        (DeliveryWriter { tx, health }, rx)
    }

    #[tokio::test]
    async fn a_full_queue_hands_the_wait_back_instead_of_spawning_it() {
        let (writer, mut rx) = handle();
        let agent = AgentId::generate();
        assert!(writer
            .ack(agent.clone(), DeliveryId::generate(), None)
            .is_none());
        let wait = writer
            .ack(agent.clone(), DeliveryId::generate(), None)
            .expect("a full queue makes the caller wait");
        // Nothing was queued behind the caller's back: the queue still holds only the first.
        assert!(matches!(rx.try_recv(), Ok(Op::Ack(..))));
        assert!(rx.try_recv().is_err());
        // Once the writer has taken one, the wait ends and the second op is queued.
        wait.await;
        assert!(matches!(rx.try_recv(), Ok(Op::Ack(..))));
        assert!(
            writer.sent(agent, Via::Socket, Vec::new()).is_none(),
            "nothing to record"
        );
    }
}
