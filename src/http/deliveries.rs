use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{DeliveryPath, WebhookPath};
use crate::{
    domain::{ids::DeliveryId, DeliveryStatus},
    error::{ApiError, ErrorBody},
    service::{
        replay,
        views::{DeliveryDetail, DeliveryPage},
        webhooks, Caller,
    },
    state::Hub,
};

pub fn configure(routes: &mut super::Routes) {
    routes
        .documented(list)
        .documented(get)
        .documented(redeliver)
        .documented(discard)
        .documented(redeliver_matching);
}

/// The activity list's query. Its values are read as text, so that a bad one gets the
/// hub's own error naming it rather than the extractor's.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many, 1 to 500; 50 when left out.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// The `nextCursor` of the page before.
    pub before: Option<String>,
    /// Only deliveries in this status.
    #[param(value_type = Option<DeliveryStatus>)]
    pub status: Option<String>,
    /// Only deliveries of this event type.
    pub event: Option<String>,
    /// Only deliveries received at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only deliveries received before this time (RFC 3339).
    pub until: Option<String>,
    /// Only the delivery with this id, or with this provider's delivery id
    /// (`X-GitHub-Delivery`, Stripe's event id, …).
    pub q: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Redelivered {
    #[schema(value_type = String)]
    pub delivery_id: DeliveryId,
    /// Always `queued`.
    pub status: &'static str,
}

/// A webhook's activity, newest first.
///
/// Every request it received: deliveries, and the requests rejected or recognised as
/// duplicates, which never reach the agent.
#[utoipa::path(
    tag = "deliveries",
    operation_id = "listDeliveries",
    params(WebhookPath, ListQuery),
    security(("ownerToken" = []), ("agentToken" = [])),
    responses(
        (status = 200, description = "A page; `nextCursor` is null on the last", body = DeliveryPage),
        (status = 400, description = "`limit`, `before` or a filter is invalid", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such webhook of the caller's", body = ErrorBody),
    ),
)]
#[get("/v1/agents/{agent}/webhooks/{webhook}/deliveries")]
async fn list(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<WebhookPath>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let WebhookPath { agent, webhook } = path.into_inner();
    let query = query.into_inner();
    let query = webhooks::ActivityQuery {
        limit: query.limit,
        before: query.before,
        status: query.status,
        event: query.event,
        since: query.since,
        until: query.until,
        q: query.q,
    };
    let page = webhooks::list_deliveries(&hub, &caller, &agent, &webhook, &query).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Read one delivery, with its headers and body.
#[utoipa::path(
    tag = "deliveries",
    operation_id = "getDelivery",
    params(DeliveryPath),
    security(("ownerToken" = []), ("agentToken" = [])),
    responses(
        (status = 200, description = "The delivery as received", body = DeliveryDetail),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such delivery of the caller's", body = ErrorBody),
    ),
)]
#[get("/v1/agents/{agent}/webhooks/{webhook}/deliveries/{delivery}")]
async fn get(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<DeliveryPath>,
) -> Result<HttpResponse, ApiError> {
    let DeliveryPath {
        agent,
        webhook,
        delivery,
    } = path.into_inner();
    let detail = webhooks::get_delivery(&hub, &caller, &agent, &webhook, &delivery).await?;
    Ok(HttpResponse::Ok().json(detail))
}

/// Queue a delivery for its agent again.
///
/// Rejected and duplicate requests were never for the agent, and are not found here.
#[utoipa::path(
    tag = "deliveries",
    operation_id = "redeliver",
    params(DeliveryPath),
    security(("ownerToken" = []), ("agentToken" = [])),
    responses(
        (status = 202, description = "Queued again, at the end of the agent's queue", body = Redelivered),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such delivery of the caller's", body = ErrorBody),
        (status = 503, description = "The agent's backlog is full, the hub is shutting down, or the write failed", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
#[post("/v1/agents/{agent}/webhooks/{webhook}/deliveries/{delivery}/redeliver")]
async fn redeliver(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<DeliveryPath>,
) -> Result<HttpResponse, ApiError> {
    let DeliveryPath {
        agent,
        webhook,
        delivery,
    } = path.into_inner();
    let delivery_id = webhooks::redeliver(&hub, &caller, &agent, &webhook, &delivery).await?;
    Ok(HttpResponse::Accepted().json(Redelivered {
        delivery_id,
        status: "queued",
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Discarded {
    #[schema(value_type = String)]
    pub delivery_id: DeliveryId,
    /// Always `failed`.
    pub status: &'static str,
    /// Always `discarded`.
    pub reason: &'static str,
}

/// Give up on a delivery.
///
/// It becomes `failed` with the reason `discarded`: never handed to the agent again, and
/// blocking nothing behind it, but kept (headers, body, history) for the retention window
/// and redeliverable. Discarding a failed delivery again changes nothing.
#[utoipa::path(
    tag = "deliveries",
    operation_id = "discardDelivery",
    params(DeliveryPath),
    security(("ownerToken" = []), ("agentToken" = [])),
    responses(
        (status = 200, description = "It is failed (discarded)", body = Discarded),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such delivery of the caller's", body = ErrorBody),
        (status = 409, description = "It is acked or expired: nothing to discard", body = ErrorBody),
    ),
)]
#[post("/v1/agents/{agent}/webhooks/{webhook}/deliveries/{delivery}/discard")]
async fn discard(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<DeliveryPath>,
) -> Result<HttpResponse, ApiError> {
    let DeliveryPath {
        agent,
        webhook,
        delivery,
    } = path.into_inner();
    let delivery_id = replay::discard(&hub, &caller, &agent, &webhook, &delivery).await?;
    Ok(HttpResponse::Ok().json(Discarded {
        delivery_id,
        status: "failed",
        reason: "discarded",
    }))
}

/// Which deliveries to redeliver; every field narrows the set.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // The schema only: the body is read by `replay::read_filter`.
pub struct RedeliverMatching {
    /// Some of `failed`, `acked`, `expired`; `["failed"]` when left out.
    #[schema(value_type = Option<Vec<DeliveryStatus>>)]
    status: Option<Vec<String>>,
    /// Only this event type.
    event: Option<String>,
    /// Received at or after this time (RFC 3339).
    since: Option<String>,
    /// Received before this time (RFC 3339).
    until: Option<String>,
    /// Only count them.
    dry_run: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct Matched {
    pub matched: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Requeued {
    pub requeued: u64,
}

/// Redeliver every delivery of a webhook that matches a filter.
///
/// They are queued again at the end of the agent's queue, in the order they were received,
/// each with its attempt count going on. All of them are queued, or, if that would pass
/// the agent's backlog cap, none (503). With `dryRun` nothing changes and the answer says
/// how many match.
#[utoipa::path(
    tag = "deliveries",
    operation_id = "redeliverMatching",
    params(WebhookPath),
    request_body = RedeliverMatching,
    security(("ownerToken" = []), ("agentToken" = [])),
    responses(
        (status = 200, description = "Dry run: how many match", body = Matched),
        (status = 202, description = "Queued again", body = Requeued),
        (status = 400, description = "Not a JSON object, or a filter is invalid", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such webhook of the caller's", body = ErrorBody),
        (status = 503, description = "They would pass the agent's backlog cap; nothing was queued", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
#[post("/v1/agents/{agent}/webhooks/{webhook}/deliveries/redeliver")]
async fn redeliver_matching(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<WebhookPath>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let WebhookPath { agent, webhook } = path.into_inner();
    // Authorize before reading the body: a stranger learns nothing from validation.
    crate::service::resolve_agent(&hub, &caller, &agent).await?;
    let body = super::json_object(&req, payload).await?;
    Ok(
        match replay::redeliver_matching(&hub, &caller, &agent, &webhook, &body).await? {
            replay::Redelivered::Matched(matched) => HttpResponse::Ok().json(Matched { matched }),
            replay::Redelivered::Requeued(requeued) => {
                HttpResponse::Accepted().json(Requeued { requeued })
            }
        },
    )
}
