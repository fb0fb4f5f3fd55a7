//! Ingest's front door: `POST /v1/hooks/{webhookId}`, where providers send events.
//!
//! In order: the webhook must exist and be active (404), the sender must be within its
//! rate (429, before the body is read), the body within its limit (413). The rest, from
//! verification to the durable commit, is `crate::service::ingest`'s.

use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    domain::ids::{DeliveryId, WebhookId},
    error::{ApiError, ErrorBody},
    ratelimit::{retry_after_secs, RateLimiter},
    service::ingest::{self, Accepted},
    state::Hub,
};

pub fn configure(routes: &mut super::Routes) {
    routes.documented(receive);
}

/// A request committed for the agent.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    #[schema(value_type = String)]
    pub delivery_id: DeliveryId,
}

/// A request answered without a new delivery.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Answered {
    /// Seen before on this webhook (by the provider's delivery id): the original's id.
    Duplicate {
        #[serde(rename = "deliveryId")]
        #[schema(value_type = String)]
        delivery_id: DeliveryId,
        /// Always `true`.
        duplicate: bool,
    },
    /// Slack checking the URL: its challenge, answered back; nothing for the agent.
    Challenge { challenge: String },
}

/// Receive an event from a provider.
///
/// The webhook's URL, as its create answer gives it. No token: the request is verified as
/// its provider signs it (Standard Webhooks for `generic`, else GitHub's, Stripe's or
/// Slack's signature; Stripe and Slack requests are taken as `verified: false` until
/// their provider secret is set), committed durably, and only then answered. The agent
/// gets it over its socket or MCP.
#[utoipa::path(
    tag = "ingest",
    operation_id = "receiveEvent",
    params(("webhookId" = String, Path, description = "The webhook's id (`whk_…`)")),
    request_body(
        description = "The provider's request as it sends it, any content type, up to the hub's body limit (`--max-body-bytes`, 25 MiB by default)",
        content = String, content_type = "*/*",
    ),
    responses(
        (status = 202, description = "Committed for the agent", body = Queued),
        (status = 200, description = "A duplicate of an earlier request, or Slack's URL check", body = Answered),
        (status = 401, description = "The signature does not verify; the request is recorded as rejected", body = ErrorBody),
        (status = 404, description = "No such active webhook", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "The body is over the limit", body = ErrorBody),
        (status = 429, description = "Over the webhook's rate, or too many bodies still arriving from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The agent's backlog is full, the hub is shutting down, or the commit failed: nothing was stored", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
#[post("/v1/hooks/{webhookId}")]
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
        Accepted::Queued(delivery_id) => {
            hub.metrics.observe_ingest(started);
            Ok(HttpResponse::Accepted().json(Queued { delivery_id }))
        }
        Accepted::Duplicate(original) => Ok(HttpResponse::Ok().json(Answered::Duplicate {
            delivery_id: original,
            duplicate: true,
        })),
        Accepted::Challenge(challenge) => {
            Ok(HttpResponse::Ok().json(Answered::Challenge { challenge }))
        }
    }
}
