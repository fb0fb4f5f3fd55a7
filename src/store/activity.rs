//! The activity history: every request a webhook received, as the owner and the agent
//! list and inspect it.

use sqlx::{sqlite::SqliteRow, Row};

use super::{
    attempts::{handler_result, AttemptRecord, LastAttempt},
    OwnedAgent, Store, StoreError,
};
use crate::domain::{
    ids::{DeliveryId, WebhookId},
    DeliveryStatus,
};

/// Which of a webhook's deliveries the activity list shows; every field narrows it.
#[derive(Clone, Debug, Default)]
pub struct ActivityFilter {
    pub status: Option<DeliveryStatus>,
    pub event: Option<String>,
    /// Received at or after, ms.
    pub since: Option<i64>,
    /// Received before, ms.
    pub until: Option<i64>,
    /// A delivery id, or the provider's own delivery id.
    pub id: Option<String>,
}

/// One delivery with its headers, body and attempt history.
#[derive(Clone, Debug)]
pub struct DeliveryRecord {
    pub record: ActivityRecord,
    pub headers: String,
    pub body: Vec<u8>,
    pub history: Vec<AttemptRecord>,
}

/// A delivery as the activity list shows it.
#[derive(Clone, Debug)]
pub struct ActivityRecord {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub status: DeliveryStatus,
    pub event: Option<String>,
    pub reason: Option<String>,
    pub received_at: i64,
    pub sent_at: Option<i64>,
    pub acked_at: Option<i64>,
    pub attempts: i64,
    pub size_bytes: i64,
    pub verified: bool,
    /// Of a rejected request's whole body, of which only the start is kept.
    pub body_sha256: Option<String>,
}

const ACTIVITY_COLUMNS: &str =
    "id, webhook_id, status, event, reason, received_at, sent_at, acked_at, attempts, size_bytes, verified, body_sha256";

fn activity_from_row(r: &SqliteRow) -> Result<ActivityRecord, StoreError> {
    let status: String = r.get("status");
    Ok(ActivityRecord {
        id: DeliveryId::from_trusted(r.get("id")),
        webhook_id: WebhookId::from_trusted(r.get("webhook_id")),
        status: super::stored_status(&status)?,
        event: r.get("event"),
        reason: r.get("reason"),
        received_at: r.get("received_at"),
        sent_at: r.get("sent_at"),
        acked_at: r.get("acked_at"),
        attempts: r.get("attempts"),
        size_bytes: r.get("size_bytes"),
        verified: r.get::<i64, _>("verified") != 0,
        body_sha256: r.get("body_sha256"),
    })
}

impl Store {
    /// A webhook's activity, newest first; `before` is a delivery id from a previous page.
    pub async fn list_deliveries(
        &self,
        owner: &OwnedAgent,
        webhook_id: &WebhookId,
        filter: &ActivityFilter,
        before: Option<&DeliveryId>,
        limit: u32,
    ) -> Result<Vec<ActivityRecord>, StoreError> {
        // An id is looked up, not searched for: the delivery's own id by its unique index,
        // a provider's id by its dedupe key (the delivery that first carried it), so that
        // finding one delivery among a webhook's millions reads a few pages.
        let by_id = if filter.id.is_some() {
            "AND seq IN (SELECT seq FROM deliveries WHERE id = ?9
                         UNION ALL SELECT seq FROM delivery_dedupe WHERE key = ?10)"
        } else {
            "AND ?9 IS NULL AND ?10 IS NULL"
        };
        let rows = sqlx::query(&format!(
            "SELECT {ACTIVITY_COLUMNS} FROM deliveries
             WHERE webhook_id = ?1 AND agent_id = ?2
               AND (?3 IS NULL OR status = ?3)
               AND (?4 IS NULL OR seq < (SELECT seq FROM deliveries WHERE id = ?4 AND webhook_id = ?1))
               AND (?6 IS NULL OR event = ?6)
               AND received_at >= ?7 AND received_at < ?8
               {by_id}
             ORDER BY seq DESC LIMIT ?5"
        ))
        .bind(webhook_id.as_str())
        .bind(owner.id().as_str())
        .bind(filter.status.map(DeliveryStatus::as_str))
        .bind(before.map(DeliveryId::as_str))
        .bind(limit)
        .bind(filter.event.as_deref())
        .bind(filter.since.unwrap_or(i64::MIN))
        .bind(filter.until.unwrap_or(i64::MAX))
        .bind(filter.id.as_deref())
        .bind(
            filter
                .id
                .as_deref()
                .map(|pid| super::dedupe::key(webhook_id.as_str(), pid)),
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(activity_from_row).collect()
    }

    /// One delivery with its headers, body and attempt history.
    pub async fn get_delivery(
        &self,
        owner: &OwnedAgent,
        webhook_id: &WebhookId,
        id: &DeliveryId,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ACTIVITY_COLUMNS}, seq, sent_via, result_status, result_ms, p.headers, p.body
             FROM deliveries JOIN delivery_payloads p USING (seq)
             WHERE id = ? AND webhook_id = ? AND agent_id = ?"
        ))
        .bind(id.as_str())
        .bind(webhook_id.as_str())
        .bind(owner.id().as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let record = activity_from_row(&r)?;
        let last = LastAttempt {
            status: record.status,
            attempts: record.attempts,
            sent_at: record.sent_at,
            via: r.get("sent_via"),
            acked_at: record.acked_at,
            result: handler_result(r.get("result_status"), r.get("result_ms")),
        };
        let history = self.history(r.get("seq"), last).await?;
        Ok(Some(DeliveryRecord {
            record,
            headers: r.get("headers"),
            body: r.get("body"),
            history,
        }))
    }
}
