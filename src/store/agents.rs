//! Agents, and [`OwnedAgent`]: the proof that a caller owns an agent.

use sqlx::{sqlite::SqliteRow, Row};

use super::{Store, StoreError};
use crate::domain::ids::{AccountId, AgentId};

#[derive(Clone, Debug)]
pub struct Agent {
    pub id: AgentId,
    pub account_id: AccountId,
    pub name: String,
    pub token_hash: Vec<u8>,
    pub created_at: i64,
    pub last_seen_at: Option<i64>,
}

/// An agent together with the account that owns it, as checked by a query that joined the
/// two. Its fields are private to this module: the only ways to get one are
/// [`Store::owned_agent`] and [`Store::agent_by_token_hash`], so every webhook query, which
/// takes one, is scoped to an owner by construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedAgent {
    id: AgentId,
    account_id: AccountId,
}

impl OwnedAgent {
    pub fn id(&self) -> &AgentId {
        &self.id
    }
    pub fn account_id(&self) -> &AccountId {
        &self.account_id
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
    }
}

const AGENT_COLUMNS: &str = "id, account_id, name, token_hash, created_at, last_seen_at";

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

    /// The agent a token belongs to, with its ownership proof.
    pub async fn agent_by_token_hash(
        &self,
        hash: &[u8],
    ) -> Result<Option<(Agent, OwnedAgent)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE token_hash = ?"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| {
            let agent = agent_from_row(&r);
            let owned = OwnedAgent {
                id: agent.id.clone(),
                account_id: agent.account_id.clone(),
            };
            (agent, owned)
        }))
    }

    /// `Some` only when `agent_id` exists and belongs to `account_id`.
    pub async fn owned_agent(
        &self,
        account_id: &AccountId,
        agent_id: &AgentId,
    ) -> Result<Option<OwnedAgent>, StoreError> {
        let row = sqlx::query("SELECT id, account_id FROM agents WHERE id = ? AND account_id = ?")
            .bind(agent_id.as_str())
            .bind(account_id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| OwnedAgent {
            id: AgentId::from_trusted(r.get("id")),
            account_id: AccountId::from_trusted(r.get("account_id")),
        }))
    }
}
