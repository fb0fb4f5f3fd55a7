use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::AgentPath;
use crate::{
    error::{ApiError, ErrorBody},
    service::{
        agents::{self, NewAgent},
        views::{AgentDeactivated, AgentView, CreatedAgent, RotatedAgentToken},
        Caller,
    },
    state::Hub,
};

pub fn configure(routes: &mut super::Routes) {
    routes
        .documented(create)
        .documented(list)
        .documented(rename)
        .documented(deactivate)
        .documented(rotate_token);
}

/// A new agent as its owner sees it, the only time its token is shown.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentCreated {
    pub agent_id: String,
    pub name: String,
    /// The agent's token, `hh_agent_…`: shown only here.
    pub token: String,
    pub created_at: String,
}

impl From<CreatedAgent> for AgentCreated {
    fn from(a: CreatedAgent) -> Self {
        Self {
            agent_id: a.agent_id,
            name: a.name,
            token: a.token,
            created_at: a.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<AgentView>,
}

/// Create an agent.
///
/// Owner tokens only: an agent manages its webhooks, not other agents.
#[utoipa::path(
    tag = "agents",
    operation_id = "createAgent",
    security(("ownerToken" = [])),
    request_body = NewAgent,
    responses(
        (status = 201, description = "Created, with the agent's token", body = AgentCreated),
        (status = 400, description = "Not a JSON object, or `name` is missing or invalid", body = ErrorBody),
        (status = 401, description = "No owner token", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 429, description = "Too many bodies still arriving from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
#[post("/v1/agents")]
async fn create(
    hub: web::Data<Hub>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = super::json_object(&req, payload).await?;
    let created = agents::create(&hub, &caller, &body).await?;
    Ok(HttpResponse::Created().json(AgentCreated::from(created)))
}

/// List the owner's agents.
#[utoipa::path(
    tag = "agents",
    operation_id = "listAgents",
    security(("ownerToken" = [])),
    responses(
        (status = 200, description = "Every agent of the owner", body = AgentList),
        (status = 401, description = "No owner token", body = ErrorBody),
    ),
)]
#[get("/v1/agents")]
async fn list(hub: web::Data<Hub>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let agents = agents::list(&hub, &caller).await?;
    Ok(HttpResponse::Ok().json(AgentList { agents }))
}

/// Rename an agent.
#[utoipa::path(
    tag = "agents",
    operation_id = "renameAgent",
    params(AgentPath),
    security(("ownerToken" = [])),
    request_body = NewAgent,
    responses(
        (status = 200, description = "Renamed", body = AgentView),
        (status = 400, description = "Not a JSON object, or `name` is missing or invalid", body = ErrorBody),
        (status = 401, description = "No owner token", body = ErrorBody),
        (status = 404, description = "No such agent of the owner's", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 429, description = "Too many bodies still arriving from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
#[patch("/v1/agents/{agent}")]
async fn rename(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<AgentPath>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Authorize before reading the body: a stranger learns nothing from validation.
    let owner = agents::owners_agent(&hub, &caller, &path.agent).await?;
    let body = super::json_object(&req, payload).await?;
    Ok(HttpResponse::Ok().json(agents::rename(&hub, &owner, &body).await?))
}

/// Delete an agent.
///
/// The agent is deactivated: its token stops working and its socket is closed (4001),
/// its webhooks are deactivated (their URLs answer 404), and its deliveries and their
/// history stay readable. Idempotent.
#[utoipa::path(
    tag = "agents",
    operation_id = "deleteAgent",
    params(AgentPath),
    security(("ownerToken" = [])),
    responses(
        (status = 200, description = "Deactivated", body = AgentDeactivated),
        (status = 401, description = "No owner token", body = ErrorBody),
        (status = 404, description = "No such agent of the owner's", body = ErrorBody),
    ),
)]
#[delete("/v1/agents/{agent}")]
async fn deactivate(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<AgentPath>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(agents::deactivate(&hub, &caller, &path.agent).await?))
}

/// Rotate an agent's token.
///
/// The new token is shown only here. The old one stops working at once, and a socket
/// opened with it is closed with 4001. An agent may rotate its own (`me`).
#[utoipa::path(
    tag = "agents",
    operation_id = "rotateAgentToken",
    params(AgentPath),
    security(("ownerToken" = []), ("agentToken" = [])),
    responses(
        (status = 200, description = "The new token", body = RotatedAgentToken),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such agent of the caller's", body = ErrorBody),
        (status = 409, description = "The agent is deleted", body = ErrorBody),
    ),
)]
#[post("/v1/agents/{agent}/token/rotate")]
async fn rotate_token(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<AgentPath>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(agents::rotate_token(&hub, &caller, &path.agent).await?))
}
