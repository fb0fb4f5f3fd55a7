use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::Hub;

pub fn configure(routes: &mut super::Routes) {
    routes.documented(healthz);
}

/// The health check's answer.
#[derive(Serialize, ToSchema)]
pub struct Health<'a> {
    /// `ok` or `unavailable`.
    status: &'static str,
    /// The running build's version.
    version: &'static str,
    /// Why it is `unavailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// Whether the hub can take deliveries.
///
/// Ready when the database answers and commits succeed. While they fail (a full disk) it
/// is 503 with the reason, and each check has the writer try a small write, so that it
/// is 200 again as soon as writing works, whether or not anything else is written.
#[utoipa::path(
    tag = "operations",
    operation_id = "health",
    responses(
        (status = 200, description = "Ready: `{\"status\": \"ok\"}`", body = Health),
        (status = 503, description = "The database does not answer, or commits fail", body = Health),
    ),
)]
#[get("/healthz")]
async fn healthz(hub: web::Data<Hub>) -> HttpResponse {
    if let Err(e) = hub.store.count_accounts().await {
        tracing::error!(error = %e, "health check: database unavailable");
        return unavailable("the database does not answer");
    }
    match hub.writer.health().await {
        Ok(()) => HttpResponse::Ok().json(Health {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
            reason: None,
        }),
        Err(reason) => unavailable(&format!("writes are failing: {reason}")),
    }
}

fn unavailable(reason: &str) -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(Health {
        status: "unavailable",
        version: env!("CARGO_PKG_VERSION"),
        reason: Some(reason),
    })
}
