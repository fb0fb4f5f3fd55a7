//! What tells whether the master key is the one this data directory was sealed with.

use super::{Store, StoreError};
use crate::domain::ids::WebhookId;

impl Store {
    /// The check value sealed at the first start, if there is one yet.
    pub async fn master_key_check(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT sealed FROM master_key_check WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn set_master_key_check(&self, sealed: &[u8]) -> Result<(), StoreError> {
        sqlx::query("INSERT OR REPLACE INTO master_key_check (id, sealed) VALUES (1, ?)")
            .bind(sealed)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Some webhook's sealed signing secret: what a directory made before the check value
    /// existed can be checked with instead.
    pub async fn any_sealed_signing_secret(
        &self,
    ) -> Result<Option<(WebhookId, Vec<u8>)>, StoreError> {
        let row: Option<(String, Vec<u8>)> =
            sqlx::query_as("SELECT id, signing_secret FROM webhooks LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(id, sealed)| (WebhookId::from_trusted(id), sealed)))
    }
}
