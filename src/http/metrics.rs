//! `GET /metrics`: the hub's counters and histograms for Prometheus.
//!
//! Unauthenticated, as scrapers expect: it tells counts and timings, never an id, a token
//! or a payload. The backlog gauges are read from the store on each scrape.

use actix_web::{web, HttpResponse};

use crate::{clock, error::ApiError, metrics::CONTENT_TYPE, state::Hub};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

async fn metrics(hub: web::Data<Hub>) -> Result<HttpResponse, ApiError> {
    let backlog = hub.store.backlog_snapshot().await?;
    let text = hub
        .metrics
        .render(backlog, clock::now_ms())
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(text))
}
