use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::{
    error::ApiError,
    service::{webhooks, Caller},
    state::Hub,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v1/agents/{agent}/webhooks/{webhook}/deliveries",
        web::get().to(list),
    )
    .route(
        "/v1/agents/{agent}/webhooks/{webhook}/deliveries/{delivery}",
        web::get().to(get),
    )
    .route(
        "/v1/agents/{agent}/webhooks/{webhook}/deliveries/{delivery}/redeliver",
        web::post().to(redeliver),
    );
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<String>,
    before: Option<String>,
    status: Option<String>,
}

async fn list(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let (agent, webhook) = path.into_inner();
    let query = query.into_inner();
    let query = webhooks::ActivityQuery {
        limit: query.limit,
        before: query.before,
        status: query.status,
    };
    let page = webhooks::list_deliveries(&hub, &caller, &agent, &webhook, &query).await?;
    Ok(HttpResponse::Ok().json(page))
}

async fn get(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (agent, webhook, delivery) = path.into_inner();
    let detail = webhooks::get_delivery(&hub, &caller, &agent, &webhook, &delivery).await?;
    Ok(HttpResponse::Ok().json(detail))
}

async fn redeliver(
    hub: web::Data<Hub>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (agent, webhook, delivery) = path.into_inner();
    let id = webhooks::redeliver(&hub, &caller, &agent, &webhook, &delivery).await?;
    Ok(HttpResponse::Accepted().json(json!({ "deliveryId": id, "status": "queued" })))
}
