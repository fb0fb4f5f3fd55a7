//! Accounts: owners, who authenticate with an owner token.

use sqlx::{sqlite::SqliteRow, Row};

use super::{Store, StoreError};
use crate::domain::ids::AccountId;

#[derive(Clone, Debug)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub token_hash: Vec<u8>,
    pub created_at: i64,
}

fn account_from_row(r: &SqliteRow) -> Account {
    Account {
        id: AccountId::from_trusted(r.get("id")),
        name: r.get("name"),
        token_hash: r.get("token_hash"),
        created_at: r.get("created_at"),
    }
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
        Ok(row.as_ref().map(account_from_row))
    }

    /// Replaces the owner token's hash, and ends every dashboard session of the account
    /// but `keep` (the session asking, if it is one), in one transaction: a leaked token
    /// may have been used to sign in. False when there is no such account.
    pub async fn replace_account_token(
        &self,
        id: &AccountId,
        token_hash: &[u8],
        keep: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE accounts SET token_hash = ? WHERE id = ?")
            .bind(token_hash)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM dashboard_sessions WHERE account_id = ? AND id_hash IS NOT ?")
            .bind(id.as_str())
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, token_hash, created_at FROM accounts ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(account_from_row).collect())
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
