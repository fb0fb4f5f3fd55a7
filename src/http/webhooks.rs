use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::{
    error::ApiError,
    service::{
        webhooks::{self, NewWebhook},
        Caller,
    },
    state::Hub,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/agents/{agent}/webhooks")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        web::resource("/v1/agents/{agent}/webhooks/{webhook}")
            .route(web::get().to(get))
            .route(web::delete().to(deactivate)),
    )
    .route(
        "/v1/agents/{agent}/webhooks/{webhook}/rotate",
        web::post().to(rotate),
    )
    .route(
        "/v1/agents/{agent}/webhooks/{webhook}/provider-secret",
        web::put().to(set_provider_secret),
    );
}

async fn create(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Authorize before reading the body: a stranger learns nothing from validation.
    crate::service::resolve_agent(&hub, &caller, &path).await?;
    let body = super::json_object(&req, payload).await?;
    let new = NewWebhook::from_object(&body)?;
    let created = webhooks::create(&hub, &caller, &path, new).await?;
    Ok(HttpResponse::Created().json(created))
}

async fn list(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let list = webhooks::list(&hub, &caller, &path).await?;
    Ok(HttpResponse::Ok().json(json!({ "webhooks": list })))
}

async fn get(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (agent, webhook) = path.into_inner();
    Ok(HttpResponse::Ok().json(webhooks::get(&hub, &caller, &agent, &webhook).await?))
}

async fn rotate(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (agent, webhook) = path.into_inner();
    Ok(HttpResponse::Ok().json(webhooks::rotate(&hub, &caller, &agent, &webhook).await?))
}

async fn set_provider_secret(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (agent, webhook) = path.into_inner();
    webhooks::get(&hub, &caller, &agent, &webhook).await?;
    let body = super::json_object(&req, payload).await?;
    webhooks::set_provider_secret(&hub, &caller, &agent, &webhook, &body).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn deactivate(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (agent, webhook) = path.into_inner();
    Ok(HttpResponse::Ok().json(webhooks::deactivate(&hub, &caller, &agent, &webhook).await?))
}
