//! The failure path's statements: attempts that end without an ack, deliveries given up
//! on (`failed`), bulk redeliver by filter, and each delivery's attempt history.
//!
//! The history costs nothing on the happy path. A delivery's own row says how its last
//! attempt was handed out (`sent_at`, `sent_via`) and, once acked, what the agent's
//! handler answered (`result_status`, `result_ms`); `delivery_attempts` gets a row only
//! when an attempt ends otherwise (a nack, a timeout, a disconnect, a discard) or when a
//! redeliver closes an attempt that the row would otherwise forget.

use std::collections::HashMap;

use sqlx::{Row, SqliteConnection};

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
pub(super) async fn end_attempts(
    conn: &mut SqliteConnection,
    ends: &[(AgentId, AttemptEnd)],
) -> Result<Vec<Failed>, StoreError> {
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<serde_json::Value> = ends
        .iter()
        .map(|(agent, e)| {
            serde_json::json!([
                e.id.as_str(),
                agent.as_str(),
                e.attempt,
                e.sent_at,
                e.via.as_str(),
                e.outcome.as_str(),
                e.at,
                e.reason,
                e.result.map(|r| r.status),
                e.result.map(|r| r.ms),
            ])
        })
        .collect();
    sqlx::query(
        "INSERT INTO delivery_attempts (seq, attempt, sent_at, via, outcome, at, reason,
             result_status, result_ms)
         SELECT d.seq, COALESCE(j.value ->> '$[2]', d.attempts), j.value ->> '$[3]',
             j.value ->> '$[4]', j.value ->> '$[5]', j.value ->> '$[6]', j.value ->> '$[7]',
             j.value ->> '$[8]', j.value ->> '$[9]'
         FROM json_each(?) j
         JOIN deliveries d ON d.id = j.value ->> '$[0]' AND d.agent_id = j.value ->> '$[1]'
         ORDER BY j.key",
    )
    .bind(json_text("the attempts that ended", &rows)?)
    .execute(&mut *conn)
    .await?;

    let mut failing: HashMap<&str, (&AgentId, FailReason, String)> = HashMap::new();
    for (agent, e) in ends {
        if let (Some(fail), Some(reason)) = (e.fail, e.failed_reason()) {
            failing
                .entry(e.id.as_str())
                .or_insert((agent, fail, reason));
        }
    }
    if failing.is_empty() {
        return Ok(Vec::new());
    }
    let fails: Vec<(&str, &str, &str)> = failing
        .iter()
        .map(|(id, (agent, _, reason))| (*id, agent.as_str(), reason.as_str()))
        .collect();
    let done = sqlx::query(
        "UPDATE deliveries SET status = 'failed', reason = f.reason
         FROM (SELECT value ->> '$[0]' AS id, value ->> '$[1]' AS agent_id,
                      value ->> '$[2]' AS reason FROM json_each(?)) AS f
         WHERE deliveries.id = f.id AND deliveries.agent_id = f.agent_id
           AND deliveries.status IN ('queued', 'sent')
         RETURNING deliveries.id, deliveries.size_bytes",
    )
    .bind(json_text("the deliveries given up on", &fails)?)
    .fetch_all(&mut *conn)
    .await?;
    let mut failed = Vec::with_capacity(done.len());
    for row in done {
        let id: String = row.try_get(0)?;
        if let Some((agent, reason, _)) = failing.get(id.as_str()) {
            failed.push(Failed {
                agent_id: (*agent).clone(),
                id: DeliveryId::from_trusted(id),
                reason: *reason,
                size_bytes: row.try_get(1)?,
            });
        }
    }
    Ok(failed)
}

/// Gives up on one delivery at its owner's word: `failed` ("discarded"), with its
/// attempt closed in the history. Idempotent; an acked or expired delivery is left as
/// it is. With the outcome, the bytes that left the backlog (0 unless it was pending).
pub(super) async fn discard(
    conn: &mut SqliteConnection,
    owner: &OwnedAgent,
    webhook_id: &WebhookId,
    id: &DeliveryId,
    at: i64,
) -> Result<(DiscardOutcome, i64), StoreError> {
    let row = sqlx::query(
        "SELECT seq, status, size_bytes FROM deliveries
         WHERE id = ? AND webhook_id = ? AND agent_id = ?",
    )
    .bind(id.as_str())
    .bind(webhook_id.as_str())
    .bind(owner.id().as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok((DiscardOutcome::NotFound, 0));
    };
    let status = super::stored_status(&row.try_get::<String, _>(1)?)?;
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
    let seq: i64 = row.try_get(0)?;
    // A sent delivery's attempt ends here; a queued one's next attempt never happens.
    sqlx::query(
        "INSERT INTO delivery_attempts (seq, attempt, sent_at, via, outcome, at, reason)
         SELECT seq, CASE status WHEN 'sent' THEN attempts ELSE attempts + 1 END,
             CASE status WHEN 'sent' THEN sent_at END,
             CASE status WHEN 'sent' THEN sent_via END, 'discarded', ?, 'discarded'
         FROM deliveries WHERE seq = ?;
         UPDATE deliveries SET status = 'failed', reason = 'discarded' WHERE seq = ?",
    )
    .bind(at)
    .bind(seq)
    .bind(seq)
    .execute(&mut *conn)
    .await?;
    Ok((DiscardOutcome::Failed, row.try_get(2)?))
}

/// Before a delivery is queued again: closes its last attempt in the history, which its
/// row is about to forget. An acked attempt keeps its ack; one still out is superseded.
pub(super) async fn close_for_redeliver(
    conn: &mut SqliteConnection,
    seq: i64,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO delivery_attempts (seq, attempt, sent_at, via, outcome, at, result_status,
             result_ms)
         SELECT seq, attempts, sent_at, sent_via,
             CASE status WHEN 'acked' THEN 'acked' ELSE 'redelivered' END,
             CASE status WHEN 'acked' THEN COALESCE(acked_at, ?) ELSE ? END,
             result_status, result_ms
         FROM deliveries WHERE seq = ? AND attempts > 0 AND status IN ('acked', 'sent')",
    )
    .bind(at)
    .bind(at)
    .bind(seq)
    .execute(conn)
    .await?;
    Ok(())
}

/// The conditions of a bulk redeliver, after `webhook_id = ? AND agent_id = ?`: bound by
/// [`bind_filter`] in this order.
const MATCHING: &str = "status IN (SELECT value FROM json_each(?))
    AND (? IS NULL OR event = ?) AND received_at >= ? AND received_at < ?";

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

fn bind_filter<'q>(
    q: SqliteQuery<'q>,
    owner: &'q OwnedAgent,
    webhook_id: &'q WebhookId,
    filter: &'q RedeliverFilter,
) -> Result<SqliteQuery<'q>, StoreError> {
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    Ok(q.bind(webhook_id.as_str())
        .bind(owner.id().as_str())
        .bind(json_text("the statuses to redeliver", &statuses)?)
        .bind(filter.event.as_deref())
        .bind(filter.event.as_deref())
        .bind(filter.since.unwrap_or(i64::MIN))
        .bind(filter.until.unwrap_or(i64::MAX)))
}

/// How many of a webhook's deliveries `filter` takes, and their bodies' bytes.
pub(super) async fn count_matching(
    conn: &mut SqliteConnection,
    owner: &OwnedAgent,
    webhook_id: &WebhookId,
    filter: &RedeliverFilter,
) -> Result<(u64, i64), StoreError> {
    let sql = format!(
        "SELECT count(*), COALESCE(SUM(size_bytes), 0) FROM deliveries
         WHERE webhook_id = ? AND agent_id = ? AND {MATCHING}"
    );
    let (n, bytes): (i64, i64) = bind_filter(sqlx::query(&sql), owner, webhook_id, filter)?
        .fetch_one(&mut *conn)
        .await
        .and_then(|r| Ok((r.try_get(0)?, r.try_get(1)?)))?;
    Ok((n as u64, bytes))
}

/// Queues again every delivery `filter` takes, in receipt order, at the queue positions
/// from `first_queue_seq` on; how many.
pub(super) async fn requeue_matching(
    conn: &mut SqliteConnection,
    owner: &OwnedAgent,
    webhook_id: &WebhookId,
    filter: &RedeliverFilter,
    first_queue_seq: i64,
) -> Result<u64, StoreError> {
    let close = format!(
        "INSERT INTO delivery_attempts (seq, attempt, sent_at, via, outcome, at, result_status,
             result_ms)
         SELECT seq, attempts, sent_at, sent_via, 'acked', acked_at, result_status, result_ms
         FROM deliveries
         WHERE webhook_id = ? AND agent_id = ? AND {MATCHING}
             AND status = 'acked' AND attempts > 0 AND acked_at IS NOT NULL
         ORDER BY seq"
    );
    bind_filter(sqlx::query(&close), owner, webhook_id, filter)?
        .execute(&mut *conn)
        .await?;
    let requeue = format!(
        "UPDATE deliveries SET status = 'queued', queue_seq = ? + m.n - 1, reason = NULL,
             result_status = NULL, result_ms = NULL, attempt_base = attempts
         FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM deliveries
               WHERE webhook_id = ? AND agent_id = ? AND {MATCHING}) AS m
         WHERE deliveries.seq = m.seq"
    );
    let done = bind_filter(
        sqlx::query(&requeue).bind(first_queue_seq),
        owner,
        webhook_id,
        filter,
    )?
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
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
