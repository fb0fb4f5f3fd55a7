//! The failure path's statements: attempts that end without an ack, deliveries given up
//! on (`failed`), bulk redeliver by filter, and each delivery's attempt history.
//!
//! The history costs nothing on the happy path. A delivery's own row says how its last
//! attempt was handed out (`sent_at`, `sent_via`) and, once acked, what the agent's
//! handler answered (`result_status`, `result_ms`); `delivery_attempts` gets a row only
//! when an attempt ends otherwise (a nack, a timeout, a disconnect, a discard) or when a
//! redeliver closes an attempt that the row would otherwise forget.

use sqlx::Row as _;

use rusqlite::{params, Connection, OptionalExtension};

use super::{json_text, OwnedAgent, Store, StoreError};
use crate::domain::{
    ids::{AgentId, DeliveryId, WebhookId},
    AttemptEnd, DeliveryStatus, DiscardOutcome, FailReason, HandlerResult, RedeliverFilter,
};

/// A delivery given up on by a batch: whose it was, why, and its body's bytes (which leave
/// the agent's backlog).
#[derive(Debug, Clone)]
pub struct Failed {
    pub agent_id: AgentId,
    pub id: DeliveryId,
    pub reason: FailReason,
    pub size_bytes: i64,
}

/// Records attempts that ended without an ack, and gives up on the deliveries whose end
/// says so: those still pending become `failed` with the end's reason. An end for a
/// delivery that is not the agent's is ignored.
pub(super) fn end_attempts(
    conn: &Connection,
    ends: &[(AgentId, AttemptEnd)],
) -> Result<Vec<Failed>, StoreError> {
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    let mut record = conn.prepare_cached(
        "INSERT INTO delivery_attempts (seq, attempt, sent_at, via, outcome, at, reason,
             result_status, result_ms)
         SELECT seq, COALESCE(?, attempts), ?, ?, ?, ?, ?, ?, ?
         FROM deliveries WHERE id = ? AND agent_id = ?",
    )?;
    for (agent, e) in ends {
        record.execute(params![
            e.attempt,
            e.sent_at,
            e.via.as_str(),
            e.outcome.as_str(),
            e.at,
            e.reason,
            e.result.map(|r| r.status),
            e.result.map(|r| r.ms as i64),
            e.id.as_str(),
            agent.as_str(),
        ])?;
    }

    // The first end that gives up on a delivery says why.
    let mut failing: Vec<(&AgentId, &DeliveryId, FailReason, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (agent, e) in ends {
        if let (Some(fail), Some(reason)) = (e.fail, e.failed_reason()) {
            if seen.insert(e.id.as_str()) {
                failing.push((agent, &e.id, fail, reason));
            }
        }
    }
    let mut failed = Vec::with_capacity(failing.len());
    if failing.is_empty() {
        return Ok(failed);
    }
    let mut give_up = conn.prepare_cached(
        "UPDATE deliveries SET status = 'failed', reason = ?
         WHERE id = ? AND agent_id = ? AND status IN ('queued', 'sent')
         RETURNING size_bytes",
    )?;
    for (agent, id, reason, words) in failing {
        let size: Option<i64> = give_up
            .query_row(params![words, id.as_str(), agent.as_str()], |r| r.get(0))
            .optional()?;
        if let Some(size_bytes) = size {
            failed.push(Failed {
                agent_id: agent.clone(),
                id: id.clone(),
                reason,
                size_bytes,
            });
        }
    }
    Ok(failed)
}

/// Gives up on one delivery at its owner's word: `failed` ("discarded"), with its
/// attempt closed in the history. Idempotent; an acked or expired delivery is left as
/// it is. With the outcome, the bytes that left the backlog (0 unless it was pending).
pub(super) fn discard(
    conn: &Connection,
    owner: &OwnedAgent,
    webhook_id: &WebhookId,
    id: &DeliveryId,
    at: i64,
) -> Result<(DiscardOutcome, i64), StoreError> {
    let row: Option<(i64, String, i64)> = conn
        .prepare_cached(
            "SELECT seq, status, size_bytes FROM deliveries
             WHERE id = ? AND webhook_id = ? AND agent_id = ?",
        )?
        .query_row(
            params![id.as_str(), webhook_id.as_str(), owner.id().as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((seq, status, size_bytes)) = row else {
        return Ok((DiscardOutcome::NotFound, 0));
    };
    let status = super::stored_status(&status)?;
    match status {
        DeliveryStatus::Rejected | DeliveryStatus::Duplicate => {
            return Ok((DiscardOutcome::NotFound, 0))
        }
        DeliveryStatus::Failed => return Ok((DiscardOutcome::Failed, 0)),
        DeliveryStatus::Acked | DeliveryStatus::Expired => {
            return Ok((DiscardOutcome::Finished(status), 0))
        }
        DeliveryStatus::Queued | DeliveryStatus::Sent => {}
    }
    // A sent delivery's attempt ends here; a queued one's next attempt never happens.
    conn.prepare_cached(
        "INSERT INTO delivery_attempts (seq, attempt, sent_at, via, outcome, at, reason)
         SELECT seq, CASE status WHEN 'sent' THEN attempts ELSE attempts + 1 END,
             CASE status WHEN 'sent' THEN sent_at END,
             CASE status WHEN 'sent' THEN sent_via END, 'discarded', ?, 'discarded'
         FROM deliveries WHERE seq = ?",
    )?
    .execute(params![at, seq])?;
    conn.prepare_cached(
        "UPDATE deliveries SET status = 'failed', reason = 'discarded' WHERE seq = ?",
    )?
    .execute(params![seq])?;
    Ok((DiscardOutcome::Failed, size_bytes))
}

/// Before a delivery is queued again: closes its last attempt in the history, which its
/// row is about to forget. An acked attempt keeps its ack; one still out is superseded.
pub(super) fn close_for_redeliver(conn: &Connection, seq: i64, at: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO delivery_attempts (seq, attempt, sent_at, via, outcome, at, result_status,
             result_ms)
         SELECT seq, attempts, sent_at, sent_via,
             CASE status WHEN 'acked' THEN 'acked' ELSE 'redelivered' END,
             CASE status WHEN 'acked' THEN COALESCE(acked_at, ?1) ELSE ?1 END,
             result_status, result_ms
         FROM deliveries WHERE seq = ?2 AND attempts > 0 AND status IN ('acked', 'sent')",
    )?
    .execute(params![at, seq])?;
    Ok(())
}

/// The deliveries of a webhook that a bulk redeliver takes: parameters `?1` to `?7` in
/// the order of [`filter_params`].
const MATCHING: &str = "webhook_id = ?1 AND agent_id = ?2
    AND status IN (SELECT value FROM json_each(?3))
    AND (?4 IS NULL OR event = ?4) AND received_at >= ?5 AND received_at < ?6";

/// The parameters of [`MATCHING`]: webhook, agent, statuses (JSON), event, since, until.
type FilterParams = (String, String, String, Option<String>, i64, i64);

/// The parameters of [`MATCHING`].
fn filter_params(
    owner: &OwnedAgent,
    webhook_id: &WebhookId,
    filter: &RedeliverFilter,
) -> Result<FilterParams, StoreError> {
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    Ok((
        webhook_id.as_str().to_owned(),
        owner.id().as_str().to_owned(),
        json_text("the statuses to redeliver", &statuses)?,
        filter.event.clone(),
        filter.since.unwrap_or(i64::MIN),
        filter.until.unwrap_or(i64::MAX),
    ))
}

/// How many of a webhook's deliveries `filter` takes, and their bodies' bytes.
pub(super) fn count_matching(
    conn: &Connection,
    owner: &OwnedAgent,
    webhook_id: &WebhookId,
    filter: &RedeliverFilter,
) -> Result<(u64, i64), StoreError> {
    let (w, a, statuses, event, since, until) = filter_params(owner, webhook_id, filter)?;
    let (n, bytes): (i64, i64) = conn
        .prepare_cached(&format!(
            "SELECT count(*), COALESCE(SUM(size_bytes), 0) FROM deliveries WHERE {MATCHING}"
        ))?
        .query_row(params![w, a, statuses, event, since, until], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok((n as u64, bytes))
}

/// Queues again every delivery `filter` takes, in receipt order, at the queue positions
/// from `first_queue_seq` on; how many.
pub(super) fn requeue_matching(
    conn: &Connection,
    owner: &OwnedAgent,
    webhook_id: &WebhookId,
    filter: &RedeliverFilter,
    first_queue_seq: i64,
) -> Result<u64, StoreError> {
    let (w, a, statuses, event, since, until) = filter_params(owner, webhook_id, filter)?;
    conn.prepare_cached(&format!(
        "INSERT INTO delivery_attempts (seq, attempt, sent_at, via, outcome, at, result_status,
             result_ms)
         SELECT seq, attempts, sent_at, sent_via, 'acked', acked_at, result_status, result_ms
         FROM deliveries
         WHERE {MATCHING} AND status = 'acked' AND attempts > 0 AND acked_at IS NOT NULL
         ORDER BY seq"
    ))?
    .execute(params![w, a, statuses, event, since, until])?;
    let done = conn
        .prepare_cached(&format!(
            "UPDATE deliveries SET status = 'queued', queue_seq = ?7 + m.n - 1, reason = NULL,
                 result_status = NULL, result_ms = NULL, attempt_base = attempts
             FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM deliveries
                   WHERE {MATCHING}) AS m
             WHERE deliveries.seq = m.seq"
        ))?
        .execute(params![
            w,
            a,
            statuses,
            event,
            since,
            until,
            first_queue_seq
        ])?;
    Ok(done as u64)
}

/// One entry of a delivery's attempt history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub attempt: i64,
    pub sent_at: Option<i64>,
    pub via: Option<String>,
    /// `None`: still out, awaiting its ack.
    pub outcome: Option<String>,
    pub at: Option<i64>,
    pub reason: Option<String>,
    pub result: Option<HandlerResult>,
}

/// What a delivery's row says of its last attempt.
pub(super) struct LastAttempt {
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub sent_at: Option<i64>,
    pub via: Option<String>,
    pub acked_at: Option<i64>,
    pub result: Option<HandlerResult>,
}

pub(super) fn handler_result(status: Option<i64>, ms: Option<i64>) -> Option<HandlerResult> {
    Some(HandlerResult {
        status: u16::try_from(status?).ok()?,
        ms: u64::try_from(ms.unwrap_or(0)).unwrap_or(0),
    })
}

impl Store {
    /// A delivery's attempts, oldest first: the ended ones recorded, then the last one as
    /// its row tells it (acked, or still out) unless that one is recorded already.
    pub(super) async fn history(
        &self,
        seq: i64,
        last: LastAttempt,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT attempt, sent_at, via, outcome, at, reason, result_status, result_ms
             FROM delivery_attempts WHERE seq = ? ORDER BY id",
        )
        .bind(seq)
        .fetch_all(&self.pool)
        .await?;
        let mut history = Vec::with_capacity(rows.len() + 1);
        for r in rows {
            history.push(AttemptRecord {
                attempt: r.try_get(0)?,
                sent_at: r.try_get(1)?,
                via: r.try_get(2)?,
                outcome: Some(r.try_get(3)?),
                at: Some(r.try_get(4)?),
                reason: r.try_get(5)?,
                result: handler_result(r.try_get(6)?, r.try_get(7)?),
            });
        }
        let recorded = history.iter().any(|h| h.attempt == last.attempts);
        let current = match last.status {
            DeliveryStatus::Acked if last.attempts > 0 => Some(AttemptRecord {
                attempt: last.attempts,
                sent_at: last.sent_at,
                via: last.via,
                outcome: Some("acked".to_owned()),
                at: last.acked_at,
                reason: None,
                result: last.result,
            }),
            DeliveryStatus::Sent if last.attempts > 0 && !recorded => Some(AttemptRecord {
                attempt: last.attempts,
                sent_at: last.sent_at,
                via: last.via,
                outcome: None,
                at: None,
                reason: None,
                result: None,
            }),
            _ => None,
        };
        history.extend(current);
        Ok(history)
    }
}
