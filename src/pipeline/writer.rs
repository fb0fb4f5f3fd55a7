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
//! Beside it runs a checkpointer on a connection of its own, copying the WAL into the
//! database file while the writer goes on committing. Left to the writer, that copy
//! (tens of MiB every couple of seconds at full load) happened inside a commit and held up
//! every delivery waiting behind it.
//!
//! It also knows whether writing works: a failed commit (a full disk, say) marks it
//! failing, the next commit that writes clears that, and while it is failing
//! [`DeliveryWriter::health`] tries a small write of its own, so that `/healthz` sees the
//! recovery even when nothing else is written.

use std::{
    collections::HashMap,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::Addr;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    clock,
    domain::{
        ids::{AgentId, DeliveryId, WebhookId},
        BacklogCap, BodyCut, DeliveryStatus, IngestOutcome, NewDelivery, PendingDelivery,
        RequeueOutcome,
    },
    metrics::Metrics,
    pipeline::registry::{Registry, Route},
    store::{BatchWriter, BatchWrites, InsertRow, OwnedAgent, Requeued, Store, StoreError},
};

/// Most operations in one transaction.
const MAX_BATCH: usize = 1024;
/// Most body bytes in one transaction, so that a burst of large bodies commits in parts.
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// How long a batch of only acks and sends waits for company before it commits alone.
/// Nobody waits for them and losing one costs only a resend, so a commit (an fsync) of
/// their own buys nothing, and it delays the next ingest that arrives while it runs.
const LINGER: Duration = Duration::from_millis(10);
/// Rejected requests kept per webhook, newest first. Each keeps its headers and at most
/// [`crate::http::ingest::REJECTED_BODY_KEPT`] of its body, so this bounds what senders
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
    Ack(AgentId, DeliveryId),
    Sent(AgentId, Vec<DeliveryId>),
    Requeue {
        owner: OwnedAgent,
        webhook_id: WebhookId,
        id: DeliveryId,
        reply: oneshot::Sender<Result<RequeueOutcome, WriteError>>,
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
        !matches!(self, Op::Ack(..) | Op::Sent(..))
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
        let task = WriterTask {
            conn,
            rx,
            registry,
            backlog_cap,
            next_seq: max_seq + 1,
            next_queue_seq: max_queue_seq + 1,
            pending_counts: HashMap::new(),
            failures: FailureLog::default(),
            metrics,
            committed,
            health: health_tx,
        };
        tokio::spawn(task.run());
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
    pub fn ack(&self, agent_id: AgentId, id: DeliveryId) -> Option<impl Future<Output = ()>> {
        self.queue(Op::Ack(agent_id, id))
    }

    /// Records that deliveries were sent; queued like [`DeliveryWriter::ack`].
    #[must_use = "a full queue hands back a wait that must be awaited"]
    pub fn sent(
        &self,
        agent_id: AgentId,
        ids: Vec<DeliveryId>,
    ) -> Option<impl Future<Output = ()>> {
        if ids.is_empty() {
            return None;
        }
        self.queue(Op::Sent(agent_id, ids))
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

struct WriterTask<B> {
    conn: B,
    rx: mpsc::Receiver<Op>,
    registry: Addr<Registry>,
    backlog_cap: BacklogCap,
    next_seq: i64,
    next_queue_seq: i64,
    /// Pending (queued or sent) deliveries per agent, loaded on first use and kept exact
    /// by this task, the only writer; cleared whenever a commit fails.
    pending_counts: HashMap<AgentId, Pending>,
    /// Failed batches not yet logged, and when the last line about them was.
    failures: FailureLog,
    metrics: Arc<Metrics>,
    /// Wakes the store's housekeeping; dropped with this task, which ends it.
    committed: mpsc::Sender<()>,
    health: watch::Sender<Health>,
}

/// What a committed batch owes its callers.
enum Answer {
    Ingest(
        oneshot::Sender<Result<IngestOutcome, WriteError>>,
        IngestOutcome,
    ),
    Reject(oneshot::Sender<Result<(), WriteError>>),
    Requeue(
        oneshot::Sender<Result<RequeueOutcome, WriteError>>,
        RequeueOutcome,
    ),
    Retention(oneshot::Sender<Result<(u64, u64), WriteError>>, (u64, u64)),
    Barrier(oneshot::Sender<()>),
    Probe(oneshot::Sender<()>),
}

impl Answer {
    /// The op changed the database, so its commit shows that writing works. A commit of
    /// only reads (a barrier, a full backlog) succeeds on a full disk too.
    fn wrote(&self) -> bool {
        match self {
            Answer::Ingest(_, outcome) => *outcome != IngestOutcome::BacklogFull,
            Answer::Reject(_) | Answer::Probe(_) => true,
            Answer::Requeue(_, outcome) => *outcome == RequeueOutcome::Queued,
            Answer::Retention(_, (expired, pruned)) => expired + pruned > 0,
            Answer::Barrier(_) => false,
        }
    }
}

impl<B: BatchWriter> WriterTask<B> {
    async fn run(mut self) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = self.rx.recv().await {
            let mut bytes = 0;
            let mut awaited = false;
            let mut next = Some(first);
            let linger_until = Instant::now() + LINGER;
            while let Some(op) = next.take() {
                bytes += op.body_len();
                awaited |= op.is_awaited();
                batch.push(op);
                if batch.len() >= MAX_BATCH || bytes >= MAX_BATCH_BYTES {
                    break;
                }
                next = match self.rx.try_recv() {
                    Ok(op) => Some(op),
                    // Nothing more now: commit if anyone waits, else linger a little.
                    Err(_) if awaited => None,
                    Err(_) => tokio::time::timeout_at(linger_until.into(), self.rx.recv())
                        .await
                        .ok()
                        .flatten(),
                };
            }
            self.commit(&mut batch).await;
        }
        tracing::debug!("delivery writer stopped: every handle is gone");
    }

    async fn commit(&mut self, batch: &mut Vec<Op>) {
        let (first_seq, first_queue_seq) = (self.next_seq, self.next_queue_seq);
        let mut answers = Vec::with_capacity(batch.len());
        let mut routed = Vec::new();
        let (ops, started) = (batch.len(), Instant::now());
        let result = self.apply(batch, &mut answers, &mut routed).await;
        match result {
            Ok(acked) => {
                self.metrics.observe_commit(ops, started.elapsed());
                if self.health.borrow().is_some()
                    && (acked > 0 || answers.iter().any(Answer::wrote))
                {
                    tracing::info!(
                        failed = self.failures.failed,
                        "the delivery writer commits again"
                    );
                    self.failures = FailureLog::default();
                    self.health.send_replace(None);
                }
                // Full means a wake-up is already waiting.
                let _ = self.committed.try_send(());
                self.metrics.acked.inc_by(acked);
                for answer in answers {
                    match answer {
                        Answer::Ingest(tx, outcome) => {
                            self.metrics.ingest_outcome(&outcome).inc();
                            drop(tx.send(Ok(outcome)))
                        }
                        Answer::Reject(tx) => {
                            self.metrics.rejected.inc();
                            drop(tx.send(Ok(())))
                        }
                        Answer::Requeue(tx, outcome) => drop(tx.send(Ok(outcome))),
                        Answer::Retention(tx, counts) => {
                            // Expiry changed pending counts behind our back: reload lazily.
                            self.pending_counts.clear();
                            self.metrics.expired.inc_by(counts.0);
                            drop(tx.send(Ok(counts)));
                        }
                        Answer::Barrier(tx) | Answer::Probe(tx) => drop(tx.send(())),
                    }
                }
                if !routed.is_empty() {
                    // Awaiting keeps routes in commit order and slows the writer when the
                    // registry falls behind, instead of queueing without bound.
                    let _ = self.registry.send(Route(routed)).await;
                }
            }
            Err(e) => {
                // One line when writes start failing, then one a minute at most: a full disk
                // fails every batch, and is the worst moment to flood the log.
                self.failures.failed += 1;
                let due = self
                    .failures
                    .logged
                    .is_none_or(|at| at.elapsed() >= FAILURE_LOG_EVERY);
                if self.health.borrow().is_none() {
                    tracing::error!(error = %e, "delivery batch failed to commit; nothing in it was accepted");
                    self.failures = FailureLog::logged_now();
                } else if due {
                    tracing::warn!(error = %e, failed = self.failures.failed, "delivery batches are still failing to commit");
                    self.failures = FailureLog::logged_now();
                } else {
                    tracing::debug!(error = %e, "delivery batch failed to commit");
                }
                self.next_seq = first_seq;
                self.next_queue_seq = first_queue_seq;
                self.pending_counts.clear();
                // Before the answers: a probe reads it once answered.
                self.health.send_replace(Some(e.public_reason()));
                let err = || WriteError::Failed(e.to_string());
                for answer in answers {
                    match answer {
                        Answer::Ingest(tx, _) => drop(tx.send(Err(err()))),
                        Answer::Reject(tx) => drop(tx.send(Err(err()))),
                        Answer::Requeue(tx, _) => drop(tx.send(Err(err()))),
                        Answer::Retention(tx, _) => drop(tx.send(Err(err()))),
                        Answer::Barrier(tx) | Answer::Probe(tx) => drop(tx.send(())),
                    }
                }
            }
        }
    }

    /// Applies the batch in one transaction. On error nothing is committed, and every
    /// answer collected so far is turned into an error by the caller. On success: how
    /// many deliveries the batch acked.
    async fn apply(
        &mut self,
        ops: &mut Vec<Op>,
        answers: &mut Vec<Answer>,
        routed: &mut Vec<Arc<PendingDelivery>>,
    ) -> Result<u64, StoreError> {
        let result = self.apply_in_transaction(ops, answers, routed).await;
        if result.is_err() {
            self.conn.rollback().await;
        }
        result
    }

    async fn apply_in_transaction(
        &mut self,
        ops: &mut Vec<Op>,
        answers: &mut Vec<Answer>,
        routed: &mut Vec<Arc<PendingDelivery>>,
    ) -> Result<u64, StoreError> {
        let now = clock::now_ms();
        // Earlier deliveries carrying the batch's provider delivery ids, in one read.
        let keys: Vec<(&str, &str)> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Ingest(d, _) => d
                    .provider_delivery_id
                    .as_deref()
                    .map(|pid| (d.webhook_id.as_str(), pid)),
                _ => None,
            })
            .collect();
        let originals = self.conn.begin(&keys).await?;
        let conn = &mut self.conn;
        drop(keys);
        // Provider delivery ids inserted earlier in this same batch.
        let mut seen_in_batch: HashMap<(WebhookId, String), DeliveryId> = HashMap::new();
        let mut deferred = Deferred::default();
        let mut acked = 0;
        let mut probe = false;
        for op in ops.drain(..) {
            match op {
                Op::Ingest(d, reply) => {
                    if let Some(pid) = &d.provider_delivery_id {
                        let key = (d.webhook_id.clone(), pid.clone());
                        let original = originals
                            .get(&key)
                            .or_else(|| seen_in_batch.get(&key))
                            .cloned();
                        if let Some(original) = original {
                            deferred.rows.push(Row::new(
                                &mut self.next_seq,
                                d,
                                DeliveryStatus::Duplicate,
                                None,
                                None,
                            ));
                            answers.push(Answer::Ingest(reply, IngestOutcome::Duplicate(original)));
                            continue;
                        }
                        seen_in_batch.insert(key, d.id.clone());
                    }
                    let count = match self.pending_counts.get(&d.agent_id) {
                        Some(c) => *c,
                        None => Pending::from(conn.count_pending(&d.agent_id).await?),
                    };
                    let size = d.body.len() as i64;
                    if !count.has_room(self.backlog_cap, size) {
                        self.pending_counts.insert(d.agent_id.clone(), count);
                        if let Some(pid) = &d.provider_delivery_id {
                            seen_in_batch.remove(&(d.webhook_id.clone(), pid.clone()));
                        }
                        answers.push(Answer::Ingest(reply, IngestOutcome::BacklogFull));
                        continue;
                    }
                    self.pending_counts
                        .insert(d.agent_id.clone(), count.plus(size));
                    let queue_seq = self.next_queue_seq;
                    self.next_queue_seq += 1;
                    let id = d.id.clone();
                    deferred.rows.push(Row::new(
                        &mut self.next_seq,
                        d,
                        DeliveryStatus::Queued,
                        Some(queue_seq),
                        None,
                    ));
                    answers.push(Answer::Ingest(reply, IngestOutcome::Queued(id)));
                }
                Op::Reject(d, reason, cut, reply) => {
                    let mut row = Row::new(
                        &mut self.next_seq,
                        d,
                        DeliveryStatus::Rejected,
                        None,
                        Some(reason),
                    );
                    row.cut = Some(cut);
                    deferred.rows.push(row);
                    answers.push(Answer::Reject(reply));
                }
                Op::Ack(agent_id, id) => deferred.acks.push((agent_id, id)),
                Op::Sent(agent_id, ids) => deferred
                    .sent_ids
                    .extend(ids.into_iter().map(|id| (agent_id.clone(), id))),
                Op::Requeue {
                    owner,
                    webhook_id,
                    id,
                    reply,
                } => {
                    acked += deferred
                        .apply(conn, routed, &mut self.pending_counts, now, false)
                        .await?;
                    let count = match self.pending_counts.get(owner.id()) {
                        Some(c) => *c,
                        None => Pending::from(conn.count_pending(owner.id()).await?),
                    };
                    // Its size is known only once it is found: room means room for one more.
                    let room = count.has_room(self.backlog_cap, 0);
                    let queue_seq = self.next_queue_seq;
                    let outcome = conn
                        .requeue(&owner, &webhook_id, &id, queue_seq, room)
                        .await?;
                    let outcome = match outcome {
                        Requeued::Queued {
                            pending,
                            was_pending,
                        } => {
                            self.next_queue_seq += 1;
                            let count = if was_pending {
                                count
                            } else {
                                count.plus(pending.body.len() as i64)
                            };
                            self.pending_counts.insert(owner.id().clone(), count);
                            routed.push(Arc::new(pending));
                            RequeueOutcome::Queued
                        }
                        Requeued::NoRoom => {
                            self.pending_counts.insert(owner.id().clone(), count);
                            RequeueOutcome::BacklogFull
                        }
                        Requeued::NotFound => RequeueOutcome::NotFound,
                    };
                    answers.push(Answer::Requeue(reply, outcome));
                }
                Op::Retention {
                    cutoff,
                    expired_cutoff,
                    reply,
                } => {
                    acked += deferred
                        .apply(conn, routed, &mut self.pending_counts, now, false)
                        .await?;
                    let counts = conn.apply_retention(cutoff, expired_cutoff).await?;
                    answers.push(Answer::Retention(reply, counts));
                }
                Op::Barrier(reply) => answers.push(Answer::Barrier(reply)),
                Op::Probe(reply) => {
                    probe = true;
                    answers.push(Answer::Probe(reply));
                }
            }
        }
        if probe {
            conn.probe(now).await?;
        }
        // The last statements and the COMMIT go to SQLite together.
        acked += deferred
            .apply(conn, routed, &mut self.pending_counts, now, true)
            .await?;
        Ok(acked)
    }
}

/// How often a writer that keeps failing says so.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
struct FailureLog {
    failed: u64,
    logged: Option<Instant>,
}

impl FailureLog {
    /// Nothing unlogged, as of a line written now.
    fn logged_now() -> Self {
        Self {
            failed: 0,
            logged: Some(Instant::now()),
        }
    }
}

/// An agent's pending deliveries (queued or sent): how many, and their bodies' bytes.
#[derive(Clone, Copy, Debug)]
struct Pending {
    count: i64,
    bytes: i64,
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
    fn has_room(self, cap: BacklogCap, size: i64) -> bool {
        self.count < cap.count && (self.count == 0 || self.bytes + size <= cap.bytes)
    }

    fn plus(self, size: i64) -> Self {
        Self {
            count: self.count + 1,
            bytes: self.bytes + size,
        }
    }
}

/// A delivery row waiting to be inserted with the rest of its batch.
struct Row {
    seq: i64,
    d: NewDelivery,
    status: DeliveryStatus,
    queue_seq: Option<i64>,
    reason: Option<String>,
    cut: Option<BodyCut>,
}

impl Row {
    /// A row numbered `next_seq`, which moves on.
    fn new(
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
struct Deferred {
    /// In receipt order; routed in the same order.
    rows: Vec<Row>,
    sent_ids: Vec<(AgentId, DeliveryId)>,
    acks: Vec<(AgentId, DeliveryId)>,
}

impl Deferred {
    /// Applies and clears everything waiting (and with `commit`, commits); how many acks
    /// took effect. The queued rows join `routed`, in order.
    async fn apply(
        &mut self,
        conn: &mut impl BatchWriter,
        routed: &mut Vec<Arc<PendingDelivery>>,
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
            at: now,
        };
        let prune = !rejected_on.is_empty();
        let acked_by_agent = conn.write(&writes, commit && !prune).await?;
        for webhook_id in rejected_on {
            conn.prune_rejected(webhook_id, REJECTED_KEPT_PER_WEBHOOK)
                .await?;
        }
        if commit && prune {
            conn.commit().await?;
        }
        drop(rows);
        self.sent_ids.clear();
        self.acks.clear();
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
        assert!(writer.ack(agent.clone(), DeliveryId::generate()).is_none());
        let wait = writer
            .ack(agent.clone(), DeliveryId::generate())
            .expect("a full queue makes the caller wait");
        // Nothing was queued behind the caller's back: the queue still holds only the first.
        assert!(matches!(rx.try_recv(), Ok(Op::Ack(..))));
        assert!(rx.try_recv().is_err());
        // Once the writer has taken one, the wait ends and the second op is queued.
        wait.await;
        assert!(matches!(rx.try_recv(), Ok(Op::Ack(..))));
        assert!(writer.sent(agent, Vec::new()).is_none(), "nothing to record");
    }
}
