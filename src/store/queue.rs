//! An agent's queue as its session reads it, and the queue's depth for `/metrics`.

use std::{collections::HashSet, sync::Arc};

use bytes::Bytes;
use sqlx::{sqlite::SqliteRow, Row, SqliteConnection};

use super::{Store, StoreError};
use crate::domain::{
    ids::{AgentId, DeliveryId, WebhookId},
    BacklogSnapshot, PendingDelivery, SealedSecrets,
};

/// One read of an agent's queue.
pub struct PendingPage {
    pub deliveries: Vec<PendingDelivery>,
    /// Nothing was left out: the queue held no more after this page when it was read.
    pub is_short: bool,
}

pub(super) const PENDING_SELECT: &str =
    "SELECT d.queue_seq, d.id, d.webhook_id, d.agent_id, w.provider, d.event,
        d.received_at, d.verified, d.attempts, d.attempt_base, p.headers, p.body,
        w.signing_secret, w.previous_secret, w.previous_secret_until, w.provider_secret
    FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
        JOIN delivery_payloads p ON p.seq = d.seq";

fn pending_from_row(r: &SqliteRow) -> Result<PendingDelivery, StoreError> {
    let provider: String = r.get("provider");
    Ok(PendingDelivery {
        queue_seq: r.get("queue_seq"),
        id: DeliveryId::from_trusted(r.get("id")),
        webhook_id: WebhookId::from_trusted(r.get("webhook_id")),
        agent_id: AgentId::from_trusted(r.get("agent_id")),
        provider: super::stored_provider(&provider)?,
        event: r.get("event"),
        received_at: r.get("received_at"),
        verified: r.get::<i64, _>("verified") != 0,
        attempts: r.get("attempts"),
        attempt_base: r.get("attempt_base"),
        headers: r.get("headers"),
        body: Bytes::from(r.get::<Vec<u8>, _>("body")),
        secrets: Arc::new(SealedSecrets {
            signing: r.get("signing_secret"),
            previous: r.get("previous_secret"),
            previous_until: r.get("previous_secret_until"),
            provider: r.get("provider_secret"),
        }),
    })
}

/// How many deliveries an agent has pending (queued or sent), and their bodies' bytes.
pub(super) const COUNT_PENDING: &str = "SELECT count(*), COALESCE(SUM(size_bytes), 0)
    FROM deliveries WHERE agent_id = ? AND status IN ('queued', 'sent')";

/// [`COUNT_PENDING`] on a pool connection.
async fn count_pending(
    conn: &mut SqliteConnection,
    agent_id: &AgentId,
) -> Result<(i64, i64), StoreError> {
    Ok(sqlx::query_as(COUNT_PENDING)
        .bind(agent_id.as_str())
        .fetch_one(conn)
        .await?)
}

impl Store {
    /// The next page of an agent's queue after `after_queue_seq`, oldest first: at most
    /// `limit` deliveries and at most `max_bytes` of bodies, except that with
    /// `first_always` the first delivery comes however large it is. The page is cut by
    /// the sizes in the queue's rows, so a body that would not fit is never read.
    pub async fn pending_page(
        &self,
        agent_id: &AgentId,
        after_queue_seq: i64,
        limit: u32,
        max_bytes: usize,
        first_always: bool,
    ) -> Result<PendingPage, StoreError> {
        // The next `limit` of the queue by its index alone, each with the bytes up to and
        // including it; only those within `max_bytes` are joined to their payloads.
        let rows = sqlx::query(
            "SELECT d.queue_seq, d.id, d.webhook_id, d.agent_id, w.provider, d.event,
                d.received_at, d.verified, d.attempts, d.attempt_base, p.headers, p.body,
                w.signing_secret, w.previous_secret, w.previous_secret_until, w.provider_secret,
                page.taken
            FROM (SELECT seq, size_bytes,
                    SUM(size_bytes) OVER (ORDER BY queue_seq ROWS UNBOUNDED PRECEDING) AS running,
                    COUNT(*) OVER () AS taken
                  FROM (SELECT seq, queue_seq, size_bytes FROM deliveries
                        WHERE agent_id = ? AND status IN ('queued', 'sent') AND queue_seq > ?
                        ORDER BY queue_seq LIMIT ?)) AS page
            JOIN deliveries d ON d.seq = page.seq
            JOIN webhooks w ON w.id = d.webhook_id
            JOIN delivery_payloads p ON p.seq = d.seq
            WHERE page.running <= ? OR (? AND page.running = page.size_bytes)
            ORDER BY d.queue_seq",
        )
        .bind(agent_id.as_str())
        .bind(after_queue_seq)
        .bind(limit)
        .bind(i64::try_from(max_bytes).unwrap_or(i64::MAX))
        .bind(first_always)
        .fetch_all(&self.pool)
        .await?;
        let taken = match rows.first() {
            Some(row) => usize::try_from(row.try_get::<i64, _>("taken")?).unwrap_or(0),
            // The first delivery always fits: no row means nothing was there. (An agent
            // connecting reads this way, so an empty backlog costs one query, not two.)
            None if first_always && limit > 0 => {
                return Ok(PendingPage {
                    deliveries: Vec::new(),
                    is_short: true,
                })
            }
            // Nothing fit, or nothing was there: only the second is the end of the queue.
            None => {
                let more: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM deliveries
                     WHERE agent_id = ? AND status IN ('queued', 'sent') AND queue_seq > ?)",
                )
                .bind(agent_id.as_str())
                .bind(after_queue_seq)
                .fetch_one(&self.pool)
                .await?;
                return Ok(PendingPage {
                    deliveries: Vec::new(),
                    is_short: !more,
                });
            }
        };
        let cut = rows.len() < taken;
        Ok(PendingPage {
            deliveries: rows
                .iter()
                .map(pending_from_row)
                .collect::<Result<_, _>>()?,
            is_short: !cut && taken < limit as usize,
        })
    }

    /// Which of `ids` are deliveries of this agent's (any status): what an agent may ack.
    pub async fn agents_deliveries(
        &self,
        agent_id: &AgentId,
        ids: &[DeliveryId],
    ) -> Result<HashSet<DeliveryId>, StoreError> {
        let ids = serde_json::to_string(&ids).map_err(|source| StoreError::Encode {
            what: "the ids to ack",
            source,
        })?;
        let found: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM deliveries
             WHERE id IN (SELECT value FROM json_each(?)) AND agent_id = ?",
        )
        .bind(ids)
        .bind(agent_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(found.into_iter().map(DeliveryId::from_trusted).collect())
    }

    /// Queued or sent, not yet acked.
    pub async fn backlog_depth(&self, agent_id: &AgentId) -> Result<i64, StoreError> {
        let (count, _bytes) = count_pending(&mut *self.pool.acquire().await?, agent_id).await?;
        Ok(count)
    }

    /// Pending deliveries of every agent, and the receipt time of the oldest: read when
    /// `/metrics` is scraped. Both come from the pending index, so the cost grows with the
    /// backlog, not with the history.
    pub async fn backlog_snapshot(&self) -> Result<BacklogSnapshot, StoreError> {
        let (depth, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), min(received_at) FROM deliveries
             WHERE status IN ('queued', 'sent')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(BacklogSnapshot {
            depth,
            oldest_received_at: oldest,
        })
    }
}
