//! The activity history: every request a webhook received, as the owner and the agent
//! list and inspect it.

use sqlx::{sqlite::SqliteRow, Row};

use super::{OwnedAgent, Store, StoreError};
use crate::domain::{
    ids::{DeliveryId, WebhookId},
    DeliveryStatus,
};

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
        status: Option<DeliveryStatus>,
        before: Option<&DeliveryId>,
        limit: u32,
    ) -> Result<Vec<ActivityRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ACTIVITY_COLUMNS} FROM deliveries
             WHERE webhook_id = ?1 AND agent_id = ?2
               AND (?3 IS NULL OR status = ?3)
               AND (?4 IS NULL OR seq < (SELECT seq FROM deliveries WHERE id = ?4 AND webhook_id = ?1))
             ORDER BY seq DESC LIMIT ?5"
        ))
        .bind(webhook_id.as_str())
        .bind(owner.id().as_str())
        .bind(status.map(DeliveryStatus::as_str))
        .bind(before.map(DeliveryId::as_str))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(activity_from_row).collect()
    }

    /// One delivery with its headers and body.
    pub async fn get_delivery(
        &self,
        owner: &OwnedAgent,
        webhook_id: &WebhookId,
        id: &DeliveryId,
    ) -> Result<Option<(ActivityRecord, String, Vec<u8>)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ACTIVITY_COLUMNS}, p.headers, p.body
             FROM deliveries JOIN delivery_payloads p USING (seq)
             WHERE id = ? AND webhook_id = ? AND agent_id = ?"
        ))
        .bind(id.as_str())
        .bind(webhook_id.as_str())
        .bind(owner.id().as_str())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some((
                activity_from_row(&r)?,
                r.get("headers"),
                r.get("body"),
            ))),
            None => Ok(None),
        }
    }
}
