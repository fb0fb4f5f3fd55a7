//! Who is calling: an owner (account token) or an agent (agent token).

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};

use crate::{
    crypto::{self, AGENT_TOKEN_PREFIX, OWNER_TOKEN_PREFIX},
    error::ApiError,
    ids::AccountId,
    service::Hub,
    store::OwnedAgent,
};

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

/// The bearer token of a request, if it has one.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Resolves a token to its caller. The row is found by the token's hash and the hash is
/// compared again in constant time, so the comparison leaks nothing even if an index
/// lookup ever changes into a scan.
pub async fn authenticate(hub: &Hub, token: &str) -> Result<Caller, ApiError> {
    let hash = crypto::hash_token(token);
    if token.starts_with(OWNER_TOKEN_PREFIX) {
        if let Some(account) = hub.store.account_by_token_hash(&hash).await? {
            if crypto::ct_eq(&account.token_hash, &hash) {
                return Ok(Caller::Owner(account.id));
            }
        }
    } else if token.starts_with(AGENT_TOKEN_PREFIX) {
        if let Some((agent, owned)) = hub.store.agent_by_token_hash(&hash).await? {
            if crypto::ct_eq(&agent.token_hash, &hash) {
                return Ok(Caller::Agent(owned));
            }
        }
    }
    Err(ApiError::Unauthorized)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let hub = req.app_data::<web::Data<Hub>>().cloned();
        let token = bearer_token(req).map(str::to_owned);
        Box::pin(async move {
            let (Some(hub), Some(token)) = (hub, token) else {
                return Err(ApiError::Unauthorized);
            };
            authenticate(&hub, &token).await
        })
    }
}
