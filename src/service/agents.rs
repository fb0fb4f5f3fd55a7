//! Agents: created and listed by their owner.

use super::{
    input::{self, Object},
    resolve_agent,
    views::{AgentDeactivated, AgentView, CreatedAgent, RotatedAgentToken},
    Hub,
};
use crate::{
    clock,
    crypto::{self, AGENT_TOKEN_PREFIX},
    domain::ids::{AccountId, AgentId},
    error::ApiError,
    pipeline::registry::{ConnectedAgents, Revoke},
    service::Caller,
    store::{Agent, OwnedAgent, Store},
};

fn owner_only(caller: &Caller) -> Result<&AccountId, ApiError> {
    match caller {
        Caller::Owner(account_id) => Ok(account_id),
        // Agents manage their webhooks, not their siblings.
        Caller::Agent(_) => Err(ApiError::OwnerOnly),
    }
}

/// Shared by the API and `hookhub agent create`. The token is returned once, here.
pub async fn create_agent(
    store: &Store,
    account_id: &AccountId,
    name: &str,
) -> Result<CreatedAgent, ApiError> {
    let id = AgentId::generate();
    let token = crypto::new_token(AGENT_TOKEN_PREFIX)?;
    let now = clock::now_ms();
    store
        .insert_agent(&id, account_id, name, &token.hash, now)
        .await?;
    Ok(CreatedAgent {
        agent_id: id.to_string(),
        account_id: account_id.to_string(),
        name: name.to_owned(),
        token: token.plaintext.expose().to_owned(),
        created_at: clock::rfc3339(now),
    })
}

/// What a new agent is made of.
#[derive(Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct NewAgent {
    /// 1 to 200 characters, surrounding whitespace trimmed.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

impl NewAgent {
    pub fn from_object(body: &Object) -> Result<Self, ApiError> {
        Ok(Self {
            name: input::required_str(body, "name", crate::domain::MAX_NAME)?,
        })
    }
}

/// The body is validated only once the caller is known to be an owner: an agent learns
/// nothing from validation.
pub async fn create(hub: &Hub, caller: &Caller, body: &Object) -> Result<CreatedAgent, ApiError> {
    let account_id = owner_only(caller)?;
    let NewAgent { name } = NewAgent::from_object(body)?;
    create_agent(&hub.store, account_id, &name).await
}

pub async fn list(hub: &Hub, caller: &Caller) -> Result<Vec<AgentView>, ApiError> {
    let account_id = owner_only(caller)?;
    let agents = hub.store.list_agents(account_id).await?;
    views(hub, &agents).await
}

/// Agents as listed: with whether each is connected, and its backlog. One count per
/// agent: an owner has few agents, and each count reads only the pending-queue index.
async fn views(hub: &Hub, agents: &[Agent]) -> Result<Vec<AgentView>, ApiError> {
    let connected = hub
        .registry
        .send(ConnectedAgents)
        .await
        .map_err(ApiError::internal)?;
    let mut views = Vec::with_capacity(agents.len());
    for a in agents {
        let backlog = hub.store.backlog_depth(&a.id).await?;
        views.push(AgentView::new(a, connected.contains(&a.id), backlog));
    }
    Ok(views)
}

/// The agent named by the path, which only its owner may change: callers authorize with
/// this before they read a body, so that a stranger learns nothing from validation.
pub async fn owners_agent(
    hub: &Hub,
    caller: &Caller,
    agent_ref: &str,
) -> Result<OwnedAgent, ApiError> {
    owner_only(caller)?;
    resolve_agent(hub, caller, agent_ref).await
}

fn deactivated_conflict() -> ApiError {
    ApiError::Conflict(
        "the agent is deleted; its history stays readable, nothing else changes".to_owned(),
    )
}

/// One agent as listed, for answers that return it.
async fn view(hub: &Hub, owner: &OwnedAgent) -> Result<AgentView, ApiError> {
    let agent = hub
        .store
        .get_agent(owner)
        .await?
        .ok_or(ApiError::NotFound)?;
    views(hub, std::slice::from_ref(&agent))
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("an agent read was not listed"))
}

/// Renames the agent `owner` proves (see [`owners_agent`]).
pub async fn rename(hub: &Hub, owner: &OwnedAgent, body: &Object) -> Result<AgentView, ApiError> {
    let NewAgent { name } = NewAgent::from_object(body)?;
    hub.store
        .rename_agent(owner, &name, clock::now_ms())
        .await?
        .ok_or(ApiError::NotFound)?;
    tracing::info!(agent_id = %owner.id(), "agent renamed");
    view(hub, owner).await
}

/// A new token for the agent, by its owner or by the agent itself. The old token stops
/// with the commit, and the socket opened with it is closed before this answers.
pub async fn rotate_token(
    hub: &Hub,
    caller: &Caller,
    agent_ref: &str,
) -> Result<RotatedAgentToken, ApiError> {
    let owner = resolve_agent(hub, caller, agent_ref).await?;
    let token = crypto::new_token(AGENT_TOKEN_PREFIX)?;
    if !hub
        .store
        .replace_agent_token(&owner, &token.hash, clock::now_ms())
        .await?
    {
        return Err(deactivated_conflict());
    }
    revoke(hub, &owner, "token rotated").await?;
    tracing::info!(agent_id = %owner.id(), "agent token rotated");
    Ok(RotatedAgentToken {
        agent_id: owner.id().to_string(),
        token: token.plaintext.expose().to_owned(),
    })
}

/// Deletes an agent by deactivating it: its token stops, its socket is closed, its
/// webhooks stop accepting (404), and its deliveries stay readable. Idempotent.
pub async fn deactivate(
    hub: &Hub,
    caller: &Caller,
    agent_ref: &str,
) -> Result<AgentDeactivated, ApiError> {
    let owner = owners_agent(hub, caller, agent_ref).await?;
    let webhooks = hub.store.deactivate_agent(&owner, clock::now_ms()).await?;
    for id in &webhooks {
        hub.webhooks.invalidate(id);
    }
    revoke(hub, &owner, "agent deleted").await?;
    if owner.is_active() {
        tracing::info!(agent_id = %owner.id(), webhooks = webhooks.len(), "agent deleted");
    }
    Ok(AgentDeactivated {
        agent_id: owner.id().to_string(),
        active: false,
    })
}

async fn revoke(hub: &Hub, owner: &OwnedAgent, reason: &'static str) -> Result<(), ApiError> {
    hub.registry
        .send(Revoke {
            agent_id: owner.id().clone(),
            reason,
        })
        .await
        .map_err(ApiError::internal)
}

/// Refuses changes to a deleted agent (creating webhooks for it, rotating its token).
pub fn require_active(owner: &OwnedAgent) -> Result<(), ApiError> {
    if owner.is_active() {
        Ok(())
    } else {
        Err(deactivated_conflict())
    }
}
