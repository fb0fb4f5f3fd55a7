use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ErrorBody},
    service::{
        agents::{self, NewAgent},
        views::{AgentView, CreatedAgent},
        Caller,
    },
    state::Hub,
};

pub fn configure(routes: &mut super::Routes) {
    routes.documented(create).documented(list);
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
