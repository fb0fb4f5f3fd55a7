//! Ingest: `POST /v1/hooks/{webhookId}`, where providers send events.
//!
//! The answer is 2xx only after the delivery writer reports the delivery durable.

use std::sync::Arc;

use actix_web::{http::header::HeaderMap, web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use crate::{
    clock,
    error::ApiError,
    ids::{DeliveryId, WebhookId},
    service::Hub,
    store::deliveries::NewDelivery,
    writer::IngestOutcome,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/hooks/{webhook}", web::post().to(ingest));
}

/// Headers that describe one hop, not the event (RFC 9110 §7.6.1); they are not stored.
const HOP_BY_HOP: [&str; 9] = [
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

/// The request's headers as a JSON object, names lower-case, repeated ones joined.
pub fn headers_json(headers: &HeaderMap) -> String {
    let mut map = Map::new();
    for (name, value) in headers {
        let name = name.as_str();
        if HOP_BY_HOP.contains(&name) {
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
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let webhook_id = WebhookId::parse(&path).ok_or(ApiError::NotFound)?;
    let webhook = hub
        .store
        .active_webhook_for_ingest(&webhook_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let body = super::read_body_limited(&req, payload, hub.config.max_body_bytes).await?;
    let delivery = NewDelivery {
        id: DeliveryId::generate(),
        webhook_id: webhook.id,
        agent_id: webhook.agent_id,
        provider: webhook.provider,
        event: None,
        provider_delivery_id: None,
        verified: false,
        received_at: clock::now_ms(),
        headers: headers_json(req.headers()),
        body,
        secrets: Arc::new(webhook.secrets),
    };
    match hub.writer.ingest(delivery).await {
        Ok(IngestOutcome::Queued(id)) => {
            Ok(HttpResponse::Accepted().json(json!({ "deliveryId": id })))
        }
        Ok(IngestOutcome::Duplicate(original)) => {
            Ok(HttpResponse::Ok().json(json!({ "deliveryId": original, "duplicate": true })))
        }
        Ok(IngestOutcome::BacklogFull) => Err(ApiError::BacklogFull {
            retry_after_secs: 30,
        }),
        Err(e) => {
            // Nothing was committed: the sender should retry, and every provider does on 5xx.
            tracing::error!(error = %e, "ingest could not be committed");
            Err(ApiError::Unavailable)
        }
    }
}
