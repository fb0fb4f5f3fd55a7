//! `GET /metrics`: the hub's counters and histograms for Prometheus.
//!
//! Unauthenticated, as scrapers expect: it tells counts and timings, never an id, a token
//! or a payload. The backlog gauges are read from the store on each scrape.

use actix_web::{get, web, HttpResponse};

use crate::{clock, error::ApiError, metrics::CONTENT_TYPE, state::Hub};

pub fn configure(routes: &mut super::Routes) {
    routes.documented(metrics);
}

/// The hub's counters and histograms, for Prometheus.
///
/// Unauthenticated, as scrapers expect: counts and timings, never an id, a token or a
/// payload.
#[utoipa::path(
    tag = "operations",
    operation_id = "metrics",
    responses(
        (status = 200, description = "The OpenMetrics text format", content_type = CONTENT_TYPE, body = String),
        (status = 500, description = "The backlog could not be read", body = crate::error::ErrorBody),
    ),
)]
#[get("/metrics")]
async fn metrics(hub: web::Data<Hub>) -> Result<HttpResponse, ApiError> {
    let backlog = hub.store.backlog_snapshot().await?;
    let text = hub
        .metrics
        .render(backlog, clock::now_ms())
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(text))
}
