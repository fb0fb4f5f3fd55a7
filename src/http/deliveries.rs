use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{DeliveryPath, WebhookPath};
use crate::{
    domain::{ids::DeliveryId, DeliveryStatus},
    error::{ApiError, ErrorBody},
    service::{
        views::{DeliveryDetail, DeliveryPage},
        webhooks, Caller,
    },
    state::Hub,
};

pub fn configure(routes: &mut super::Routes) {
    routes
        .documented(list)
        .documented(get)
        .documented(redeliver);
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
        (status = 400, description = "`limit`, `before` or `status` is invalid", body = ErrorBody),
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
