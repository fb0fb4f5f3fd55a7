//! The writer task: gathers the operations waiting, applies them in one transaction, and
//! answers each caller once the transaction is durable (or has failed).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::{prelude::SendError, Addr};
use tokio::sync::{mpsc, oneshot, watch};

use super::{
    plan::{Deferred, Pending, Row},
    Health, Op, WriteError, LINGER, MAX_BATCH, MAX_BATCH_BYTES,
};
use crate::{
    clock,
    domain::{
        ids::{AgentId, DeliveryId, WebhookId},
        BacklogCap, BulkRequeueOutcome, DeliveryStatus, DiscardOutcome, IngestOutcome,
        RequeueOutcome,
    },
    metrics::Metrics,
    pipeline::registry::{Registry, Route},
    store::{BatchWriter, Failed, Requeued, StoreError},
};

pub(super) struct WriterTask<B> {
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
    Discard(
        oneshot::Sender<Result<DiscardOutcome, WriteError>>,
        DiscardOutcome,
    ),
    Bulk(
        oneshot::Sender<Result<BulkRequeueOutcome, WriteError>>,
        BulkRequeueOutcome,
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
            Answer::Discard(_, outcome) => *outcome == DiscardOutcome::Failed,
            Answer::Bulk(_, outcome) => {
                matches!(outcome, BulkRequeueOutcome::Requeued(n) if *n > 0)
            }
            Answer::Retention(_, (expired, pruned)) => expired + pruned > 0,
            Answer::Barrier(_) => false,
        }
    }
}

impl<B: BatchWriter> WriterTask<B> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        conn: B,
        rx: mpsc::Receiver<Op>,
        registry: Addr<Registry>,
        backlog_cap: BacklogCap,
        (next_seq, next_queue_seq): (i64, i64),
        metrics: Arc<Metrics>,
        committed: mpsc::Sender<()>,
        health: watch::Sender<Health>,
    ) -> Self {
        Self {
            conn,
            rx,
            registry,
            backlog_cap,
            next_seq,
            next_queue_seq,
            pending_counts: HashMap::new(),
            failures: FailureLog::default(),
            metrics,
            committed,
            health,
        }
    }

    pub(super) async fn run(mut self) {
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
        let mut routed = Route::default();
        let mut failed = Vec::new();
        let (ops, started) = (batch.len(), Instant::now());
        let result = self
            .apply(batch, &mut answers, &mut routed, &mut failed)
            .await;
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
                for f in &failed {
                    self.metrics.failed(f.reason).inc();
                }
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
                        Answer::Discard(tx, outcome) => drop(tx.send(Ok(outcome))),
                        Answer::Bulk(tx, outcome) => drop(tx.send(Ok(outcome))),
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
                    // Into the registry's mailbox, in commit order (this task is its only
                    // sender of routes), without waiting for its answer: that wait woke
                    // this thread once more per commit. Only a full mailbox makes the
                    // writer wait, which slows it when the registry falls behind instead
                    // of queueing without bound.
                    if let Err(SendError::Full(routed)) = self.registry.try_send(routed) {
                        let _ = self.registry.send(routed).await;
                    }
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
                        Answer::Discard(tx, _) => drop(tx.send(Err(err()))),
                        Answer::Bulk(tx, _) => drop(tx.send(Err(err()))),
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
        routed: &mut Route,
        failed: &mut Vec<Failed>,
    ) -> Result<u64, StoreError> {
        let result = self
            .apply_in_transaction(ops, answers, routed, failed)
            .await;
        if result.is_err() {
            self.conn.rollback().await;
        }
        result
    }

    async fn apply_in_transaction(
        &mut self,
        ops: &mut Vec<Op>,
        answers: &mut Vec<Answer>,
        route: &mut Route,
        failed: &mut Vec<Failed>,
    ) -> Result<u64, StoreError> {
        let routed = &mut route.deliveries;
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
                Op::Ack(agent_id, id, result) => deferred.acks.push((agent_id, id, result)),
                Op::Seen(agent_id, at) => deferred.seen.push((agent_id, at)),
                Op::Sent(agent_id, via, ids) => deferred
                    .sent_ids
                    .extend(ids.into_iter().map(|id| (agent_id.clone(), via, id))),
                Op::Ended(agent_id, end) => deferred.ends.push((agent_id, end)),
                Op::Discard {
                    owner,
                    webhook_id,
                    id,
                    reply,
                } => {
                    acked += deferred
                        .apply(conn, routed, failed, &mut self.pending_counts, now, false)
                        .await?;
                    let (outcome, freed) = conn.discard(&owner, &webhook_id, &id, now).await?;
                    if outcome == DiscardOutcome::Failed && freed > 0 {
                        // Pending until now: it leaves the backlog, and any session holding
                        // it stops sending it.
                        if let Some(c) = self.pending_counts.get_mut(owner.id()) {
                            c.count -= 1;
                            c.bytes -= freed;
                        }
                        route.settled.push((owner.id().clone(), id.clone()));
                        failed.push(Failed {
                            agent_id: owner.id().clone(),
                            id,
                            reason: crate::domain::FailReason::Discarded,
                            size_bytes: freed,
                        });
                    }
                    answers.push(Answer::Discard(reply, outcome));
                }
                Op::RequeueMatching {
                    owner,
                    webhook_id,
                    filter,
                    dry_run,
                    reply,
                } => {
                    acked += deferred
                        .apply(conn, routed, failed, &mut self.pending_counts, now, false)
                        .await?;
                    let (n, bytes) = conn.count_matching(&owner, &webhook_id, &filter).await?;
                    let outcome = if dry_run {
                        BulkRequeueOutcome::Matched(n)
                    } else {
                        let count = match self.pending_counts.get(owner.id()) {
                            Some(c) => *c,
                            None => Pending::from(conn.count_pending(owner.id()).await?),
                        };
                        self.pending_counts.insert(owner.id().clone(), count);
                        if !count.has_room_for(self.backlog_cap, n as i64, bytes) {
                            BulkRequeueOutcome::BacklogFull(n)
                        } else {
                            let first = self.next_queue_seq;
                            let done = conn
                                .requeue_matching(&owner, &webhook_id, &filter, first)
                                .await?;
                            self.next_queue_seq += done as i64;
                            // Counted before, the rows taken now: the same unless a
                            // delivery of the filter changed between the two statements,
                            // which only this writer can do.
                            self.pending_counts
                                .insert(owner.id().clone(), count.plus_many(done as i64, bytes));
                            if done > 0 {
                                // Too many to carry: the session reads them from the store.
                                route
                                    .moved
                                    .push((owner.id().clone(), first + done as i64 - 1));
                            }
                            BulkRequeueOutcome::Requeued(done)
                        }
                    };
                    answers.push(Answer::Bulk(reply, outcome));
                }
                Op::Requeue {
                    owner,
                    webhook_id,
                    id,
                    reply,
                } => {
                    acked += deferred
                        .apply(conn, routed, failed, &mut self.pending_counts, now, false)
                        .await?;
                    let count = match self.pending_counts.get(owner.id()) {
                        Some(c) => *c,
                        None => Pending::from(conn.count_pending(owner.id()).await?),
                    };
                    // Its size is known only once it is found: room means room for one more.
                    let room = count.has_room(self.backlog_cap, 0);
                    let queue_seq = self.next_queue_seq;
                    let outcome = conn
                        .requeue(&owner, &webhook_id, &id, queue_seq, room, now)
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
                            routed.push(Arc::new(*pending));
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
                        .apply(conn, routed, failed, &mut self.pending_counts, now, false)
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
            .apply(conn, routed, failed, &mut self.pending_counts, now, true)
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
