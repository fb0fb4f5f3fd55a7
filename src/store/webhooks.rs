//! Webhooks. Every query but the ingest lookup is scoped by an [`OwnedAgent`].

use std::sync::Arc;

use sqlx::{sqlite::SqliteRow, Row};

use super::{OwnedAgent, Store, StoreError};
use crate::domain::{
    ids::{AgentId, WebhookId},
    Provider, SealedSecrets,
};

#[derive(Clone, Debug)]
pub struct Webhook {
    pub id: WebhookId,
    pub agent_id: AgentId,
    pub name: String,
    pub provider: Provider,
    pub active: bool,
    pub created_by: String,
    /// Whether the owner has set the secret Stripe or Slack issued (never the secret).
    pub provider_secret_set: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What ingest needs to know about an active webhook.
#[derive(Clone, Debug)]
pub struct IngestWebhook {
    pub id: WebhookId,
    pub agent_id: AgentId,
    pub provider: Provider,
    pub secrets: Arc<SealedSecrets>,
}

const WEBHOOK_COLUMNS: &str =
    "id, agent_id, name, provider, active, created_by, created_at, updated_at,
    provider_secret IS NOT NULL AS provider_secret_set";

fn webhook_from_row(r: &SqliteRow) -> Result<Webhook, StoreError> {
    let provider: String = r.get("provider");
    Ok(Webhook {
        id: WebhookId::from_trusted(r.get("id")),
        agent_id: AgentId::from_trusted(r.get("agent_id")),
        name: r.get("name"),
        provider: super::stored_provider(&provider)?,
        active: r.get::<i64, _>("active") != 0,
        created_by: r.get("created_by"),
        provider_secret_set: r.get::<i64, _>("provider_secret_set") != 0,
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

impl Store {
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_webhook(
        &self,
        owner: &OwnedAgent,
        id: &WebhookId,
        name: &str,
        provider: Provider,
        created_by: &str,
        sealed_signing_secret: &[u8],
        now: i64,
    ) -> Result<Webhook, StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO webhooks (id, agent_id, name, provider, active, created_by, signing_secret, created_at, updated_at)
             VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?) RETURNING {WEBHOOK_COLUMNS}"
        ))
        .bind(id.as_str())
        .bind(owner.id().as_str())
        .bind(name)
        .bind(provider.as_str())
        .bind(created_by)
        .bind(sealed_signing_secret)
        .bind(now)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        webhook_from_row(&row)
    }

    pub async fn list_webhooks(&self, owner: &OwnedAgent) -> Result<Vec<Webhook>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE agent_id = ? ORDER BY created_at, id"
        ))
        .bind(owner.id().as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    pub async fn get_webhook(
        &self,
        owner: &OwnedAgent,
        id: &WebhookId,
    ) -> Result<Option<Webhook>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ? AND agent_id = ?"
        ))
        .bind(id.as_str())
        .bind(owner.id().as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(webhook_from_row).transpose()
    }

    /// Moves the current signing secret to `previous` (verifying until `previous_until`)
    /// and installs the new one. `false` when the webhook is not the owner's.
    pub async fn rotate_webhook_secret(
        &self,
        owner: &OwnedAgent,
        id: &WebhookId,
        sealed_new_secret: &[u8],
        previous_until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhooks SET previous_secret = signing_secret, previous_secret_until = ?,
                 signing_secret = ?, updated_at = ?
             WHERE id = ? AND agent_id = ?",
        )
        .bind(previous_until)
        .bind(sealed_new_secret)
        .bind(now)
        .bind(id.as_str())
        .bind(owner.id().as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_provider_secret(
        &self,
        owner: &OwnedAgent,
        id: &WebhookId,
        sealed_secret: &[u8],
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhooks SET provider_secret = ?, updated_at = ? WHERE id = ? AND agent_id = ?",
        )
        .bind(sealed_secret)
        .bind(now)
        .bind(id.as_str())
        .bind(owner.id().as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn rename_webhook(
        &self,
        owner: &OwnedAgent,
        id: &WebhookId,
        name: &str,
        now: i64,
    ) -> Result<Option<Webhook>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE webhooks SET name = ?, updated_at = ? WHERE id = ? AND agent_id = ?
             RETURNING {WEBHOOK_COLUMNS}"
        ))
        .bind(name)
        .bind(now)
        .bind(id.as_str())
        .bind(owner.id().as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(webhook_from_row).transpose()
    }

    /// Idempotent: deactivating an inactive webhook changes nothing and still succeeds.
    pub async fn deactivate_webhook(
        &self,
        owner: &OwnedAgent,
        id: &WebhookId,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhooks SET active = 0, updated_at = CASE WHEN active = 1 THEN ? ELSE updated_at END
             WHERE id = ? AND agent_id = ?",
        )
        .bind(now)
        .bind(id.as_str())
        .bind(owner.id().as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The one unscoped webhook read: a sender knows only the URL. Inactive is absent.
    pub async fn active_webhook_for_ingest(
        &self,
        id: &WebhookId,
    ) -> Result<Option<IngestWebhook>, StoreError> {
        let row = sqlx::query(
            "SELECT id, agent_id, provider, signing_secret, previous_secret, previous_secret_until, provider_secret
             FROM webhooks WHERE id = ? AND active = 1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let provider: String = r.get("provider");
            Ok(IngestWebhook {
                id: WebhookId::from_trusted(r.get("id")),
                agent_id: AgentId::from_trusted(r.get("agent_id")),
                provider: super::stored_provider(&provider)?,
                secrets: Arc::new(SealedSecrets {
                    signing: r.get("signing_secret"),
                    previous: r.get("previous_secret"),
                    previous_until: r.get("previous_secret_until"),
                    provider: r.get("provider_secret"),
                }),
            })
        })
        .transpose()
    }
}
