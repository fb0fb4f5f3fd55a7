use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::{
    error::ApiError,
    service::{agents, Caller},
    state::Hub,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/agents")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    );
}

async fn create(
    hub: web::Data<Hub>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = super::json_object(&req, payload).await?;
    let created = agents::create(&hub, &caller, &body).await?;
    Ok(HttpResponse::Created().json(json!({
        "agentId": created.agent_id,
        "name": created.name,
        "token": created.token,
        "createdAt": created.created_at,
    })))
}

async fn list(hub: web::Data<Hub>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let agents = agents::list(&hub, &caller).await?;
    Ok(HttpResponse::Ok().json(json!({ "agents": agents })))
}
