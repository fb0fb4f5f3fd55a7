//! The rules of hookhub, in one place for every caller: the HTTP API, the agent's
//! self-service tools on its socket, and the dashboard all call these functions, so an
//! ownership check, a validation or `createdBy` cannot differ between paths.

pub mod accounts;
pub mod agents;
pub mod input;
pub mod tools;
pub mod views;
pub mod webhooks;

use std::sync::Arc;

use actix::Addr;
use tokio_util::sync::CancellationToken;

use crate::{
    actors::Registry, admission::BodySlots, auth::Caller, config::Config, crypto::MasterKey,
    error::ApiError, ids::AgentId, metrics::Metrics, ratelimit::RateLimiter, store::OwnedAgent,
    store::Store, webhook_cache::WebhookCache, writer::DeliveryWriter,
};

/// Everything a request or a session needs, shared by all of them.
#[derive(Clone)]
pub struct Hub {
    pub store: Store,
    pub writer: DeliveryWriter,
    pub registry: Addr<Registry>,
    pub key: MasterKey,
    pub config: Arc<Config>,
    /// Base of every webhook `url`, without a trailing slash.
    pub public_url: Arc<str>,
    /// Cancelled when the hub starts shutting down, so that long-lived responses (the
    /// dashboard's live activity streams) end at once instead of holding up the drain.
    pub shutdown: CancellationToken,
    /// This hub's counters and histograms (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// Active webhooks as ingest sees them; invalidated by every change to one.
    pub webhooks: Arc<WebhookCache>,
    /// How many rejected requests per webhook are recorded: past this rate they are
    /// refused all the same, and only counted.
    pub rejections: Arc<RateLimiter>,
    /// Request bodies being read, per peer address.
    pub body_slots: Arc<BodySlots>,
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
