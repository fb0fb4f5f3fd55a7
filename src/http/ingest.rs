//! Ingest's front door: `POST /v1/hooks/{webhookId}`, where providers send events.
//!
//! In order: the webhook must exist and be active (404), the sender must be within its
//! rate (429, before the body is read), the body within its limit (413). The rest, from
//! verification to the durable commit, is `crate::service::ingest`'s.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::{
    domain::ids::WebhookId,
    error::ApiError,
    ratelimit::{retry_after_secs, RateLimiter},
    service::ingest::{self, Accepted},
    state::Hub,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/hooks/{webhook}", web::post().to(receive));
}

async fn receive(
    hub: web::Data<Hub>,
    limiter: web::Data<RateLimiter>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = std::time::Instant::now();
    let webhook_id = WebhookId::parse(&path).ok_or(ApiError::NotFound)?;
    let webhook = hub
        .webhooks
        .active(&hub.store, &webhook_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if let Err(wait) = limiter.check(&webhook.id) {
        // The sender is told to come back: on this same connection, if its body is small.
        super::discard_body(&req, payload).await;
        return Err(ApiError::RateLimited {
            retry_after_secs: retry_after_secs(wait),
        });
    }
    let body = super::read_body_limited(&req, payload, hub.config.max_body_bytes).await?;
    match ingest::accept(&hub, &limiter, &webhook, req.headers(), body).await? {
        Accepted::Queued(id) => {
            hub.metrics.observe_ingest(started);
            Ok(HttpResponse::Accepted().json(json!({ "deliveryId": id })))
        }
        Accepted::Duplicate(original) => {
            Ok(HttpResponse::Ok().json(json!({ "deliveryId": original, "duplicate": true })))
        }
        Accepted::Challenge(challenge) => {
            Ok(HttpResponse::Ok().json(json!({ "challenge": challenge })))
        }
    }
}
