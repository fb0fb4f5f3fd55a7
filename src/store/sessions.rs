//! Dashboard sessions: an owner signed in from a browser. Rows are found by the hash of
//! the cookie's session id; an expired row is as good as absent and is swept on sign-in.
//! No CSRF token is stored: it is derived from the session id (see [`crate::http::auth`]).

use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::ids::AccountId;

#[derive(Clone, Debug)]
pub struct DashboardSession {
    pub id_hash: Vec<u8>,
    pub account_id: AccountId,
    pub account_name: String,
    pub expires_at: i64,
}

impl Store {
    pub async fn insert_dashboard_session(
        &self,
        id_hash: &[u8],
        account_id: &AccountId,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO dashboard_sessions (id_hash, account_id, created_at, expires_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(id_hash)
        .bind(account_id.as_str())
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session with this id hash, if it has not expired by `now`.
    pub async fn dashboard_session(
        &self,
        id_hash: &[u8],
        now: i64,
    ) -> Result<Option<DashboardSession>, StoreError> {
        let row = sqlx::query(
            "SELECT s.id_hash, s.account_id, a.name, s.expires_at
             FROM dashboard_sessions s JOIN accounts a ON a.id = s.account_id
             WHERE s.id_hash = ? AND s.expires_at > ?",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| DashboardSession {
            id_hash: r.get("id_hash"),
            account_id: AccountId::from_trusted(r.get("account_id")),
            account_name: r.get("name"),
            expires_at: r.get("expires_at"),
        }))
    }

    pub async fn delete_dashboard_session(&self, id_hash: &[u8]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM dashboard_sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_expired_dashboard_sessions(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
