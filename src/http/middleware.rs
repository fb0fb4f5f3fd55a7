//! What wraps every request: the access log, and keeping the operator's routes off the
//! public listener when the hub has an admin listener.

use std::{net::SocketAddr, time::Instant};

use actix_web::{
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
    web, Error, HttpResponse,
};

use crate::error::ApiError;

/// One INFO line per request (target `hookhub::access`, so that `RUST_LOG` can keep or
/// drop it on its own): method, path, status and latency, with the peer's address. The
/// query string is left out and so is every header: nothing a caller authenticates with
/// is ever in a line. For a stream or a socket, the latency is the time to its head.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    // Under a filter that drops these lines (the load test's), skip even the copies.
    if !tracing::enabled!(target: "hookhub::access", tracing::Level::INFO) {
        return next.call(req).await;
    }
    let started = Instant::now();
    let method = req.method().clone();
    let path = loggable_path(req.path());
    let peer = req
        .peer_addr()
        .map_or_else(|| "-".to_owned(), |a| a.ip().to_string());
    let result = next.call(req).await;
    let status = match &result {
        Ok(res) => res.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        target: "hookhub::access",
        method = %method,
        path = %path,
        status,
        latency_ms = (latency_ms * 1000.0).round() / 1000.0,
        peer = %peer,
        "request"
    );
    result
}

/// A path as a caller sent it may hold anything: control characters are escaped, so a
/// text line stays one line, and it is cut to a length any real route fits in.
fn loggable_path(path: &str) -> String {
    const MOST: usize = 256;
    let mut out = String::with_capacity(path.len().min(MOST + 3));
    for c in path.chars() {
        if out.len() >= MOST {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The address of the admin listener, when there is one.
#[derive(Clone, Copy, Debug)]
pub struct AdminListener(pub SocketAddr);

/// With an admin listener, the public one serves only what senders and agents need from
/// outside: ingest, the agent's socket, MCP, an agent's own routes (`/v1/agents/me/…`) and
/// the health check. The dashboard, the owner's management API, `/metrics` and the
/// OpenAPI document are on the admin listener alone; asked for on the public one, they are
/// the 404 of a route that does not exist.
pub async fn public_routes_only(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let admin = req.app_data::<web::Data<AdminListener>>().map(|a| a.0);
    let on_admin = admin.is_none_or(|admin| req.app_config().local_addr() == admin);
    if on_admin || is_public(req.path()) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let refused = HttpResponse::NotFound().json(ApiError::NotFound.body());
    Ok(req.into_response(refused).map_into_right_body())
}

fn is_public(path: &str) -> bool {
    path.starts_with("/v1/hooks/")
        // An agent's own routes: `me` names an agent only with that agent's token, so an
        // owner's token gets nothing from them (404), and an agent keeps its HTTP
        // self-service (`hookhub listen --create`, rotating its own token, …).
        || path.starts_with("/v1/agents/me/")
        || matches!(
            path,
            "/healthz" | "/v1/agent/connect" | "/v1/mcp" | "/v1/agents/me"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_path_is_one_line_and_bounded() {
        assert_eq!(loggable_path("/v1/hooks/whk_1"), "/v1/hooks/whk_1");
        assert_eq!(loggable_path("/a\nb\r\u{1b}"), "/a\\nb\\r\\u{1b}");
        let long = format!("/{}", "x".repeat(10_000));
        let cut = loggable_path(&long);
        assert!(cut.len() <= 260 && cut.ends_with("..."), "{}", cut.len());
    }

    #[test]
    fn the_public_listener_keeps_what_senders_and_agents_need() {
        for path in [
            "/v1/hooks/whk_01J",
            "/healthz",
            "/v1/agent/connect",
            "/v1/mcp",
            "/v1/agents/me/webhooks",
            "/v1/agents/me/token/rotate",
        ] {
            assert!(is_public(path), "{path}");
        }
        for path in [
            "/",
            "/metrics",
            "/v1/agents",
            "/v1/agents/agt_01J/webhooks",
            "/v1/agents/mex/webhooks",
            "/dashboard/session",
            "/v1/openapi.json",
            "/v1/mcpx",
            "/v1/account/token/rotate",
        ] {
            assert!(!is_public(path), "{path}");
        }
    }
}
