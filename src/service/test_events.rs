//! Test events: a sample request from a webhook's provider ([`crate::providers::samples`]),
//! signed with the webhook's own stored secret and taken through ingest exactly as a
//! sender's request is ([`super::ingest::accept`]: verification, dedupe, the durable
//! commit, delivery to the agent). What the dashboard's "Send test event" does, so that a
//! webhook can be checked end to end before its provider is set up.
//!
//! A Stripe or Slack webhook whose provider secret is not set yet has nothing to sign with:
//! its sample goes unsigned, and is accepted as `verified: false`, as the provider's own
//! requests are until then.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;

use super::{
    ingest::{self, Accepted},
    input::{self, Object},
    resolve_webhook, Caller,
};
use crate::{
    clock,
    crypto::{Keys, Secret},
    error::ApiError,
    providers::samples,
    ratelimit::{retry_after_secs, RateLimiter},
    state::Hub,
};

/// Sends a sample of `body.event` (or the provider's default) to the webhook named by the
/// path. Someone else's webhook is not found, as a missing one is; so is a deactivated one,
/// whose URL takes nothing either. The webhook's rate applies, as it does to its sender.
pub async fn send(
    hub: &Hub,
    limiter: &RateLimiter,
    caller: &Caller,
    agent_ref: &str,
    webhook_ref: &str,
    body: &Object,
) -> Result<Accepted, ApiError> {
    let (_, webhook) = resolve_webhook(hub, caller, agent_ref, webhook_ref).await?;
    let id = webhook.id;
    // As ingest sees it: active, with its sealed secrets.
    let webhook = hub
        .webhooks
        .active(&hub.store, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let event = input::optional_str(body, "event", samples::MAX_EVENT)?;
    let now = clock::now_ms();
    let sample = {
        let keys = Keys::open(&hub.key, &webhook.id, &webhook.secrets, now)?;
        let secret = samples::signing_secret(webhook.provider, &keys).map(Secret::expose);
        samples::build(webhook.provider, event.as_deref(), secret, now)
    }
    .map_err(|e| match e {
        samples::SampleError::InvalidEvent(_) => ApiError::invalid("event", e.to_string()),
        // The hub made the signing secret itself: one it cannot sign with is its own fault.
        other => ApiError::internal(other),
    })?;
    if let Err(wait) = limiter.check(&webhook.id) {
        return Err(ApiError::RateLimited {
            retry_after_secs: retry_after_secs(wait),
        });
    }
    let headers = header_map(&sample.headers)?;
    tracing::info!(webhook_id = %webhook.id, event = %sample.event, signed = sample.signed, "test event");
    ingest::accept(hub, limiter, &webhook, &headers, Bytes::from(sample.body)).await
}

/// The sample's headers as a request carries them (names lower-cased, as HTTP/2 and the
/// hub's stored headers have them).
fn header_map(pairs: &[(&'static str, String)]) -> Result<HeaderMap, ApiError> {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(ApiError::internal)?;
        let value = HeaderValue::from_str(value).map_err(ApiError::internal)?;
        headers.append(name, value);
    }
    Ok(headers)
}
