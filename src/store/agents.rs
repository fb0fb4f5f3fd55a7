//! Agents, and [`OwnedAgent`]: the proof that a caller owns an agent.

use sqlx::{sqlite::SqliteRow, Row};

use super::{Store, StoreError};
use crate::domain::ids::{AccountId, AgentId, WebhookId};

#[derive(Clone, Debug)]
pub struct Agent {
    pub id: AgentId,
    pub account_id: AccountId,
    pub name: String,
    pub token_hash: Vec<u8>,
    pub created_at: i64,
    pub last_seen_at: Option<i64>,
    /// False once its owner deleted it: its token and webhooks no longer work.
    pub active: bool,
}

/// An agent together with the account that owns it, as checked by a query that joined the
/// two. Its fields are private to this module: the only ways to get one are
/// [`Store::owned_agent`] and [`Store::agent_by_token_hash`], so every webhook query, which
/// takes one, is scoped to an owner by construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedAgent {
    id: AgentId,
    account_id: AccountId,
    active: bool,
    /// The hash of the agent token this was proven with, when it was (the agent calling
    /// for itself): what a long-running request checks again, so that it ends with the
    /// token.
    token_hash: Option<Vec<u8>>,
}

impl OwnedAgent {
    pub fn id(&self) -> &AgentId {
        &self.id
    }
    pub fn account_id(&self) -> &AccountId {
        &self.account_id
    }
    /// As it was when ownership was checked. An agent caller is always active: a
    /// deactivated agent's token does not authenticate.
    pub fn is_active(&self) -> bool {
        self.active
    }
}

fn agent_from_row(r: &SqliteRow) -> Agent {
    Agent {
        id: AgentId::from_trusted(r.get("id")),
        account_id: AccountId::from_trusted(r.get("account_id")),
        name: r.get("name"),
        token_hash: r.get("token_hash"),
        created_at: r.get("created_at"),
        last_seen_at: r.get("last_seen_at"),
        active: r.get::<i64, _>("active") != 0,
    }
}

fn owned_from_row(r: &SqliteRow) -> OwnedAgent {
    OwnedAgent {
        id: AgentId::from_trusted(r.get("id")),
        account_id: AccountId::from_trusted(r.get("account_id")),
        active: r.get::<i64, _>("active") != 0,
        token_hash: None,
    }
}

const AGENT_COLUMNS: &str = "id, account_id, name, token_hash, created_at, last_seen_at, active";

impl Store {
    pub async fn insert_agent(
        &self,
        id: &AgentId,
        account_id: &AccountId,
        name: &str,
        token_hash: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agents (id, account_id, name, token_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id.as_str())
        .bind(account_id.as_str())
        .bind(name)
        .bind(token_hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn list_agents(&self, account_id: &AccountId) -> Result<Vec<Agent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE account_id = ? ORDER BY created_at, id"
        ))
        .bind(account_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(agent_from_row).collect())
    }

    /// The active agent a token belongs to, with its ownership proof.
    pub async fn agent_by_token_hash(
        &self,
        hash: &[u8],
    ) -> Result<Option<(Agent, OwnedAgent)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE token_hash = ? AND active = 1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| {
            let agent = agent_from_row(&r);
            let owned = OwnedAgent {
                token_hash: Some(agent.token_hash.clone()),
                ..owned_from_row(&r)
            };
            (agent, owned)
        }))
    }

    /// Whether the token `owner` was proven with still authenticates (not rotated, the
    /// agent not deleted). True for an owner's proof, which no agent token made.
    pub async fn agent_token_still_valid(&self, owner: &OwnedAgent) -> Result<bool, StoreError> {
        let Some(hash) = &owner.token_hash else {
            return Ok(true);
        };
        let row =
            sqlx::query("SELECT 1 FROM agents WHERE id = ? AND token_hash = ? AND active = 1")
                .bind(owner.id().as_str())
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    pub async fn get_agent(&self, owner: &OwnedAgent) -> Result<Option<Agent>, StoreError> {
        let row = sqlx::query(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?"))
            .bind(owner.id().as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(agent_from_row))
    }

    /// Replaces an active agent's token hash: the old token stops authenticating with
    /// this commit. False when the agent is deactivated.
    pub async fn replace_agent_token(
        &self,
        owner: &OwnedAgent,
        token_hash: &[u8],
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE agents SET token_hash = ?, updated_at = ? WHERE id = ? AND active = 1",
        )
        .bind(token_hash)
        .bind(now)
        .bind(owner.id().as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn rename_agent(
        &self,
        owner: &OwnedAgent,
        name: &str,
        now: i64,
    ) -> Result<Option<Agent>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE agents SET name = ?, updated_at = ? WHERE id = ? RETURNING {AGENT_COLUMNS}"
        ))
        .bind(name)
        .bind(now)
        .bind(owner.id().as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(agent_from_row))
    }

    /// Deactivates the agent and every webhook of it, in one transaction, and returns the
    /// webhooks it deactivated (none when it already was: this is idempotent).
    pub async fn deactivate_agent(
        &self,
        owner: &OwnedAgent,
        now: i64,
    ) -> Result<Vec<WebhookId>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE agents SET active = 0, updated_at = ? WHERE id = ? AND active = 1")
            .bind(now)
            .bind(owner.id().as_str())
            .execute(&mut *tx)
            .await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE webhooks SET active = 0, updated_at = ? WHERE agent_id = ? AND active = 1
             RETURNING id",
        )
        .bind(now)
        .bind(owner.id().as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ids.into_iter().map(WebhookId::from_trusted).collect())
    }

    /// `Some` only when `agent_id` exists and belongs to `account_id`.
    pub async fn owned_agent(
        &self,
        account_id: &AccountId,
        agent_id: &AgentId,
    ) -> Result<Option<OwnedAgent>, StoreError> {
        let row = sqlx::query(
            "SELECT id, account_id, active FROM agents WHERE id = ? AND account_id = ?",
        )
        .bind(agent_id.as_str())
        .bind(account_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(owned_from_row))
    }
}
