//! Accounts: owners, who authenticate with an owner token.

use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::ids::AccountId;

#[derive(Clone, Debug)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub token_hash: Vec<u8>,
    pub created_at: i64,
}

impl Store {
    pub async fn insert_account(
        &self,
        id: &AccountId,
        name: &str,
        token_hash: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO accounts (id, name, token_hash, created_at) VALUES (?, ?, ?, ?)")
            .bind(id.as_str())
            .bind(name)
            .bind(token_hash)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn account_by_token_hash(&self, hash: &[u8]) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, token_hash, created_at FROM accounts WHERE token_hash = ?",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Account {
            id: AccountId::from_trusted(r.get("id")),
            name: r.get("name"),
            token_hash: r.get("token_hash"),
            created_at: r.get("created_at"),
        }))
    }

    pub async fn account_exists(&self, id: &AccountId) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM accounts WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    pub async fn count_accounts(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM accounts")
            .fetch_one(&self.pool)
            .await?)
    }
}
