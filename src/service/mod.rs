//! The rules of hookhub, in one place for every caller: the HTTP API, the agent's
//! self-service tools on its socket, and the dashboard all call these functions, so an
//! ownership check, a validation or `createdBy` cannot differ between paths.

pub mod accounts;
pub mod agents;
pub mod events;
pub mod ingest;
pub mod input;
pub mod replay;
pub mod test_events;
pub mod tools;
pub mod views;
pub mod webhooks;

use crate::{
    domain::ids::{AccountId, AgentId},
    error::ApiError,
    state::Hub,
    store::{OwnedAgent, Webhook},
};

/// Who is calling, once authenticated (by `crate::http::auth`, or by the socket the agent
/// opened with its token).
#[derive(Clone, Debug)]
pub enum Caller {
    /// The dashboard path: `createdBy: "user"`.
    Owner(AccountId),
    /// The self-service path: `createdBy: "agent"`.
    Agent(OwnedAgent),
}

impl Caller {
    pub fn account_id(&self) -> &AccountId {
        match self {
            Caller::Owner(a) => a,
            Caller::Agent(agent) => agent.account_id(),
        }
    }

    pub fn created_by(&self) -> &'static str {
        match self {
            Caller::Owner(_) => "user",
            Caller::Agent(_) => "agent",
        }
    }
}

/// The agent named by a path (`me` for an agent caller), if the caller owns it. Anything
/// else is `NotFound`, the same whether it does not exist or is someone else's.
pub async fn resolve_agent(
    hub: &Hub,
    caller: &Caller,
    agent_ref: &str,
) -> Result<OwnedAgent, ApiError> {
    match caller {
        Caller::Agent(own) => {
            if agent_ref == "me" || agent_ref == own.id().as_str() {
                Ok(own.clone())
            } else {
                Err(ApiError::NotFound)
            }
        }
        Caller::Owner(account_id) => {
            let agent_id = AgentId::parse(agent_ref).ok_or(ApiError::NotFound)?;
            hub.store
                .owned_agent(account_id, &agent_id)
                .await?
                .ok_or(ApiError::NotFound)
        }
    }
}

/// The webhook named by a path, if the caller owns the agent and the agent the webhook,
/// with the agent's proof that its queries take. Anything else is `NotFound`, as for a
/// webhook that does not exist.
pub async fn resolve_webhook(
    hub: &Hub,
    caller: &Caller,
    agent_ref: &str,
    webhook_ref: &str,
) -> Result<(OwnedAgent, Webhook), ApiError> {
    let owner = resolve_agent(hub, caller, agent_ref).await?;
    let id = webhooks::parse_webhook_id(webhook_ref)?;
    let webhook = hub
        .store
        .get_webhook(&owner, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((owner, webhook))
}
