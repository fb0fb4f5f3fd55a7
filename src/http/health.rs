use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::Hub;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz));
}

/// Ready when the database answers and commits succeed. While they fail (a full disk) it
/// is 503 with the reason, and each check has the writer try a small write, so that it
/// is 200 again as soon as writing works, whether or not anything else is written.
async fn healthz(hub: web::Data<Hub>) -> HttpResponse {
    if let Err(e) = hub.store.count_accounts().await {
        tracing::error!(error = %e, "health check: database unavailable");
        return unavailable("the database does not answer");
    }
    match hub.writer.health().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ok"})),
        Err(reason) => unavailable(&format!("writes are failing: {reason}")),
    }
}

fn unavailable(reason: &str) -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable", "reason": reason}))
}
