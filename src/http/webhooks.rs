use actix_web::{delete, get, patch, post, put, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::{AgentPath, WebhookPath};
use crate::{
    error::{ApiError, ErrorBody},
    service::{
        views::{CreatedWebhook, Deactivated, RotatedSecret, WebhookView},
        webhooks::{self, NewWebhook, ProviderSecret},
        Caller,
    },
    state::Hub,
};

pub fn configure(routes: &mut super::Routes) {
    routes
        .documented(create)
        .documented(list)
        .documented(get)
        .documented(deactivate)
        .documented(rename)
        .documented(rotate)
        .documented(set_provider_secret);
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

/// Create a webhook for an agent.
///
/// Its URL is where the provider sends events; its signing secret, shown only here, is
/// what a generic sender signs with and what the hub signs deliveries with.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "createWebhook",
    params(AgentPath),
    security(("ownerToken" = []), ("agentToken" = [])),
    request_body = NewWebhook,
    responses(
        (status = 201, description = "Created, with its signing secret", body = CreatedWebhook),
        (status = 400, description = "Not a JSON object, or `name` or `provider` is invalid", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such agent of the caller's", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 429, description = "Too many bodies still arriving from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
#[post("/v1/agents/{agent}/webhooks")]
async fn create(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<AgentPath>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Authorize before reading the body: a stranger learns nothing from validation.
    crate::service::resolve_agent(&hub, &caller, &path.agent).await?;
    let body = super::json_object(&req, payload).await?;
    let new = NewWebhook::from_object(&body)?;
    let created = webhooks::create(&hub, &caller, &path.agent, new).await?;
    Ok(HttpResponse::Created().json(created))
}

/// List an agent's webhooks.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "listWebhooks",
    params(AgentPath),
    security(("ownerToken" = []), ("agentToken" = [])),
    responses(
        (status = 200, description = "Every webhook of the agent, deactivated ones too", body = WebhookList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such agent of the caller's", body = ErrorBody),
    ),
)]
#[get("/v1/agents/{agent}/webhooks")]
async fn list(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<AgentPath>,
) -> Result<HttpResponse, ApiError> {
    let webhooks = webhooks::list(&hub, &caller, &path.agent).await?;
    Ok(HttpResponse::Ok().json(WebhookList { webhooks }))
}

/// Read a webhook.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "getWebhook",
    params(WebhookPath),
    security(("ownerToken" = []), ("agentToken" = [])),
    responses(
        (status = 200, description = "The webhook, without its secrets", body = WebhookView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such webhook of the caller's", body = ErrorBody),
    ),
)]
#[get("/v1/agents/{agent}/webhooks/{webhook}")]
async fn get(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<WebhookPath>,
) -> Result<HttpResponse, ApiError> {
    let WebhookPath { agent, webhook } = path.into_inner();
    Ok(HttpResponse::Ok().json(webhooks::get(&hub, &caller, &agent, &webhook).await?))
}

/// Rotate a webhook's signing secret.
///
/// The old secret still verifies inbound requests for the rotation overlap, so that a
/// sender can be switched over without losing events.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "rotateSigningSecret",
    params(WebhookPath),
    security(("ownerToken" = []), ("agentToken" = [])),
    responses(
        (status = 200, description = "The new signing secret, shown only here", body = RotatedSecret),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such webhook of the caller's", body = ErrorBody),
    ),
)]
#[post("/v1/agents/{agent}/webhooks/{webhook}/rotate")]
async fn rotate(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<WebhookPath>,
) -> Result<HttpResponse, ApiError> {
    let WebhookPath { agent, webhook } = path.into_inner();
    Ok(HttpResponse::Ok().json(webhooks::rotate(&hub, &caller, &agent, &webhook).await?))
}

/// Set the secret a Stripe or Slack webhook's requests are verified with.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "setProviderSecret",
    params(WebhookPath),
    security(("ownerToken" = []), ("agentToken" = [])),
    request_body = ProviderSecret,
    responses(
        (status = 204, description = "Set; requests verify with it from now on"),
        (status = 400, description = "Not a JSON object, `secret` is missing or invalid, or the webhook is neither Stripe nor Slack", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such webhook of the caller's", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 429, description = "Too many bodies still arriving from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
#[put("/v1/agents/{agent}/webhooks/{webhook}/provider-secret")]
async fn set_provider_secret(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<WebhookPath>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let WebhookPath { agent, webhook } = path.into_inner();
    webhooks::get(&hub, &caller, &agent, &webhook).await?;
    let body = super::json_object(&req, payload).await?;
    webhooks::set_provider_secret(&hub, &caller, &agent, &webhook, &body).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A webhook's new name.
#[derive(serde::Deserialize, ToSchema)]
pub struct Rename {
    /// 1 to 200 characters, surrounding whitespace trimmed.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

/// Rename a webhook.
///
/// Its id, URL and secrets stay as they are.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "renameWebhook",
    params(WebhookPath),
    security(("ownerToken" = []), ("agentToken" = [])),
    request_body = Rename,
    responses(
        (status = 200, description = "Renamed", body = WebhookView),
        (status = 400, description = "Not a JSON object, or `name` is missing or invalid", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such webhook of the caller's", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 429, description = "Too many bodies still arriving from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
#[patch("/v1/agents/{agent}/webhooks/{webhook}")]
async fn rename(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<WebhookPath>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let WebhookPath { agent, webhook } = path.into_inner();
    webhooks::get(&hub, &caller, &agent, &webhook).await?;
    let body = super::json_object(&req, payload).await?;
    Ok(HttpResponse::Ok().json(webhooks::rename(&hub, &caller, &agent, &webhook, &body).await?))
}

/// Deactivate a webhook.
///
/// Its URL answers 404 from then on; its deliveries and activity are kept.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "deactivateWebhook",
    params(WebhookPath),
    security(("ownerToken" = []), ("agentToken" = [])),
    responses(
        (status = 200, description = "Deactivated", body = Deactivated),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such webhook of the caller's", body = ErrorBody),
    ),
)]
#[delete("/v1/agents/{agent}/webhooks/{webhook}")]
async fn deactivate(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<WebhookPath>,
) -> Result<HttpResponse, ApiError> {
    let WebhookPath { agent, webhook } = path.into_inner();
    Ok(HttpResponse::Ok().json(webhooks::deactivate(&hub, &caller, &agent, &webhook).await?))
}
