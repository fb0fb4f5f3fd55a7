//! `POST /v1/agents/{agent}/webhooks/{webhook}/test-event`: a sample event from the
//! webhook's provider, taken through ingest as a real one is (see
//! [`crate::service::test_events`]). Answered as ingest answers its sender.

use actix_web::{http::header, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    ingest::{Answered, Queued},
    WebhookPath,
};
use crate::{
    error::{ApiError, ErrorBody},
    ratelimit::RateLimiter,
    service::{ingest::Accepted, input::Object, test_events, Caller},
    state::Hub,
};

pub fn configure(routes: &mut super::Routes) {
    routes.documented(send_test_event);
}

/// What to send.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"event": "push"}))]
#[allow(dead_code)] // The schema only: the body is read by `test_events::send`.
pub struct TestEvent {
    /// The event type, 1 to 100 letters, digits and `. _ : -`; the body is shaped for it
    /// where the provider's differ (GitHub's `push`, `ping`, `issues`, `pull_request`;
    /// Stripe's `payment_intent.*`, `charge.*`, `checkout.session.*`; Slack's
    /// `app_mention`, `message`, `url_verification`). When left out: `push` (github),
    /// `payment_intent.succeeded` (stripe), `app_mention` (slack), `test.event` (generic).
    event: Option<String>,
}

/// Send a test event to a webhook.
///
/// A realistic sample from the webhook's provider (GitHub's headers and a push, a Stripe
/// `event` object, a Slack `event_callback`, a Standard Webhooks message), with a fresh
/// provider delivery id, signed as the provider signs with the secret the hub holds: the
/// signing secret for github and generic, the provider secret for stripe and slack. It
/// goes through ingest as a request to the webhook's URL does (verification, dedupe, the
/// durable commit, the agent's socket), and is answered as that request would be. A Stripe
/// or Slack webhook without a provider secret gets it unsigned, as `verified: false`.
/// The body may be left out, for the provider's default event.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "sendTestEvent",
    params(WebhookPath),
    security(("ownerToken" = []), ("agentToken" = [])),
    request_body(content = TestEvent, description = "The event type to send; `{}`, or no body at all, sends the provider's default"),
    responses(
        (status = 202, description = "Committed for the agent, as a sender's request is", body = Queued),
        (status = 200, description = "Slack's `url_verification`: answered with its challenge, nothing for the agent", body = Answered),
        (status = 400, description = "Not a JSON object, or `event` is invalid", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such active webhook of the caller's", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 429, description = "Over the webhook's rate, or too many bodies still arriving from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The agent's backlog is full, the hub is shutting down, or the commit failed: nothing was stored", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
#[post("/v1/agents/{agent}/webhooks/{webhook}/test-event")]
async fn send_test_event(
    hub: web::Data<Hub>,
    limiter: web::Data<RateLimiter>,
    caller: Caller,
    path: web::Path<WebhookPath>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let WebhookPath { agent, webhook } = path.into_inner();
    // Authorize before reading the body: a stranger learns nothing from validation.
    crate::service::resolve_agent(&hub, &caller, &agent).await?;
    let body = optional_json_object(&req, payload).await?;
    match test_events::send(&hub, &limiter, &caller, &agent, &webhook, &body).await? {
        Accepted::Queued(delivery_id) => Ok(HttpResponse::Accepted().json(Queued { delivery_id })),
        Accepted::Duplicate(original) => Ok(HttpResponse::Ok().json(Answered::Duplicate {
            delivery_id: original,
            duplicate: true,
        })),
        Accepted::Challenge(challenge) => {
            Ok(HttpResponse::Ok().json(Answered::Challenge { challenge }))
        }
    }
}

/// A JSON object body, or none at all (no content type, nothing sent): `{}`.
async fn optional_json_object(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Object, ApiError> {
    if req.headers().contains_key(header::CONTENT_TYPE) {
        return super::json_object(req, payload).await;
    }
    let body = super::read_body_limited(req, payload, 64 * 1024).await?;
    if body.is_empty() {
        Ok(Object::new())
    } else {
        Err(ApiError::invalid(
            "content-type",
            "the content type must be application/json",
        ))
    }
}
