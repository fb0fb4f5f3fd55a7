//! Ingest: `POST /v1/hooks/{webhookId}`, where providers send events.
//!
//! In order: the webhook must exist and be active (404), the sender must be within its
//! rate (429, before the body is read), the body within its limit (413), and the request
//! must verify under the webhook's provider scheme (401, recorded as `rejected`). Only
//! then is it handed to the delivery writer, and the answer is 2xx only once the writer
//! reports it durable. Slack's `url_verification` is answered here and never queued.

use actix_web::{http::header::HeaderMap, web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::{
    clock,
    error::ApiError,
    ids::{DeliveryId, WebhookId},
    providers::{Keys, Verdict},
    ratelimit::{retry_after_secs, RateLimiter},
    service::Hub,
    store::deliveries::{BodyCut, NewDelivery},
    writer::IngestOutcome,
};

/// How much of a rejected request's body is kept: enough to see what was sent. Anyone
/// who knows a webhook's URL can send one, so its whole body is never stored.
pub const REJECTED_BODY_KEPT: usize = 4096;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/hooks/{webhook}", web::post().to(ingest));
}

/// Headers that describe one hop, not the event (RFC 9110 §7.6.1); they are not stored.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The request's headers as a JSON object, names lower-case, repeated ones joined. Left
/// out, as a proxy leaves them out (RFC 9110 §7.6.1): the hop-by-hop headers, and any
/// header the sender itself named in `Connection`, which it meant for this hop alone.
pub fn headers_json(headers: &HeaderMap) -> String {
    let for_this_hop: Vec<String> = headers
        .get_all("connection")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    let mut map = Map::new();
    for (name, value) in headers {
        let name = name.as_str();
        if HOP_BY_HOP.contains(&name) || for_this_hop.iter().any(|n| n == name) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match map.get_mut(name) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                map.insert(name.to_owned(), Value::String(value));
            }
        }
    }
    Value::Object(map).to_string()
}

async fn ingest(
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
    let received_at = clock::now_ms();
    let keys = Keys::open(&hub.key, &webhook.id, &webhook.secrets, received_at)?;
    let inspection = webhook
        .provider
        .inspect(req.headers(), &body, &keys, received_at);
    drop(keys);

    let mut delivery = NewDelivery {
        id: DeliveryId::generate(),
        webhook_id: webhook.id.clone(),
        agent_id: webhook.agent_id.clone(),
        provider: webhook.provider,
        event: inspection.event,
        provider_delivery_id: inspection.provider_delivery_id,
        verified: false,
        received_at,
        headers: headers_json(req.headers()),
        body,
        secrets: webhook.secrets.clone(),
    };
    match inspection.verdict {
        Verdict::Verified => delivery.verified = true,
        // Stripe and Slack before the owner has set the secret they issued.
        Verdict::Unverifiable => {}
        Verdict::Rejected(reason) => {
            // A sender that fails verification does not spend the webhook's rate: a flood
            // of forged requests must not get the real sender's requests refused.
            limiter.refund(&webhook.id);
            return Err(reject(&hub, delivery, reason).await);
        }
    }
    if let Some(challenge) = inspection.challenge {
        // Slack is checking the URL: nothing for the agent.
        return Ok(HttpResponse::Ok().json(json!({ "challenge": challenge })));
    }
    match hub.writer.ingest(delivery).await {
        Ok(IngestOutcome::Queued(id)) => {
            hub.metrics.observe_ingest(started);
            Ok(HttpResponse::Accepted().json(json!({ "deliveryId": id })))
        }
        Ok(IngestOutcome::Duplicate(original)) => {
            Ok(HttpResponse::Ok().json(json!({ "deliveryId": original, "duplicate": true })))
        }
        Ok(IngestOutcome::BacklogFull) => Err(ApiError::backlog_full()),
        Err(e) => {
            // Nothing was committed: the sender should retry, and every provider does on 5xx.
            // The writer logs the failure itself, once per outage rather than per request.
            tracing::debug!(error = %e, "ingest could not be committed");
            Err(e.into())
        }
    }
}

/// Records a request that failed verification and makes its 401. The verdict stands even
/// if the record cannot be written: a sender is never asked to retry a bad signature.
///
/// The record keeps the headers, the start of the body, and the whole body's size and
/// hash. Past a few per second on one webhook, requests are only counted: the writer's
/// time and the disk are for deliveries, and the records kept show what is wrong.
async fn reject(hub: &Hub, mut delivery: NewDelivery, reason: String) -> ApiError {
    if hub.rejections.check(&delivery.webhook_id).is_err() {
        hub.metrics.rejected_unrecorded.inc();
        return ApiError::InvalidSignature(reason);
    }
    tracing::info!(webhook_id = %delivery.webhook_id, delivery_id = %delivery.id, %reason, "request rejected");
    let cut = BodyCut {
        size_bytes: delivery.body.len() as i64,
        sha256: hex::encode(Sha256::digest(&delivery.body)),
    };
    delivery.body =
        Bytes::copy_from_slice(&delivery.body[..delivery.body.len().min(REJECTED_BODY_KEPT)]);
    if let Err(e) = hub.writer.reject(delivery, reason.clone(), cut).await {
        tracing::debug!(error = %e, "a rejected request could not be recorded");
    }
    ApiError::InvalidSignature(reason)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    #[test]
    fn headers_the_sender_named_in_connection_are_not_stored() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Hop-Secret"),
            ("x-hop-secret", "for the proxy only"),
            ("keep-alive", "timeout=5"),
            ("x-github-event", "push"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let stored: Value = serde_json::from_str(&headers_json(&headers)).unwrap();
        assert_eq!(stored, json!({"x-github-event": "push"}));
    }
}
