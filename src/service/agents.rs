//! Agents: created and listed by their owner.

use super::{
    input::{self, Object},
    views::{AgentView, CreatedAgent},
    Hub,
};
use crate::{
    clock,
    crypto::{self, AGENT_TOKEN_PREFIX},
    domain::ids::{AccountId, AgentId},
    error::ApiError,
    pipeline::registry::ConnectedAgents,
    service::Caller,
    store::Store,
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
    let connected = hub
        .registry
        .send(ConnectedAgents)
        .await
        .map_err(ApiError::internal)?;
    // One count per agent: an owner has few agents, and each count reads only the
    // pending-queue index.
    let mut views = Vec::with_capacity(agents.len());
    for a in &agents {
        let backlog = hub.store.backlog_depth(&a.id).await?;
        views.push(AgentView::new(a, connected.contains(&a.id), backlog));
    }
    Ok(views)
}
