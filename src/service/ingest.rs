//! Ingest's rules, past the front door: verify a request under its webhook's provider
//! scheme (401, recorded as `rejected`), answer Slack's `url_verification` without
//! queueing it, and hand everything else to the delivery writer, answering only once the
//! writer reports it durable. What comes before (the webhook exists and is active, the
//! sender is within its rate, the body within its limit) is `crate::http::ingest`'s.

use actix_web::http::header::HeaderMap;
use bytes::Bytes;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::{
    clock,
    crypto::Keys,
    domain::{headers::HOP_BY_HOP, ids::DeliveryId, BodyCut, IngestOutcome, NewDelivery},
    error::ApiError,
    providers::Verdict,
    ratelimit::RateLimiter,
    state::Hub,
    store::IngestWebhook,
};

/// How much of a rejected request's body is kept: enough to see what was sent. Anyone
/// who knows a webhook's URL can send one, so its whole body is never stored.
pub const REJECTED_BODY_KEPT: usize = 4096;

/// What a request that passed verification came to.
#[derive(Debug)]
pub enum Accepted {
    /// Committed: the new delivery's id.
    Queued(DeliveryId),
    /// Seen before on this webhook: the original delivery's id.
    Duplicate(DeliveryId),
    /// Slack is checking the URL: the challenge to answer, nothing for the agent.
    Challenge(String),
}

/// Verifies `body` as `webhook`'s provider signs it and commits it for its agent. A
/// request that fails verification is recorded (within `hub.rejections`) and gives its
/// token back to `limiter`.
pub async fn accept(
    hub: &Hub,
    limiter: &RateLimiter,
    webhook: &IngestWebhook,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Accepted, ApiError> {
    let received_at = clock::now_ms();
    let keys = Keys::open(&hub.key, &webhook.id, &webhook.secrets, received_at)?;
    let inspection = webhook.provider.inspect(headers, &body, &keys, received_at);
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
        headers: headers_json(headers),
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
            return Err(reject(hub, delivery, reason).await);
        }
    }
    if let Some(challenge) = inspection.challenge {
        // Slack is checking the URL: nothing for the agent.
        return Ok(Accepted::Challenge(challenge));
    }
    match hub.writer.ingest(delivery).await {
        Ok(IngestOutcome::Queued(id)) => Ok(Accepted::Queued(id)),
        Ok(IngestOutcome::Duplicate(original)) => Ok(Accepted::Duplicate(original)),
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

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};
    use serde_json::json;

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
