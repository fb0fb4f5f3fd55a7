use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::service::Hub;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz));
}

/// Ready when the database answers.
async fn healthz(hub: web::Data<Hub>) -> HttpResponse {
    match hub.store.count_accounts().await {
        Ok(_) => HttpResponse::Ok().json(json!({"status": "ok"})),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unavailable");
            HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable"}))
        }
    }
}
