//! `POST /v1/mcp`: the MCP server over Streamable HTTP, on the hub's own listener.
//!
//! rmcp's transport (through `rmcp-actix-web`) speaks the protocol; in front of it, this
//! file decides who may reach it, with the same JSON errors as the rest of the API:
//!
//! - a browser page may call it only from an allowed `Origin` (the hub's public URL, and
//!   `--mcp-allowed-origins`); any other `Origin` is 403, as the MCP transport asks, so
//!   that a page a user visits cannot drive a hub on their network;
//! - it needs an agent token: a missing or unknown token, or an owner's, is 401;
//! - the body is read within the body limit and timeout that bound every management
//!   request, before rmcp sees it.
//!
//! It is stateless (no `Mcp-Session-Id`): every request carries its token, so nothing
//! per client is kept between requests, and no client can grow the hub's memory with
//! sessions it never ends. rmcp is not given the hub's shutdown token: cancelling it drops
//! calls in flight, which then answer 500; instead a `next_events` waiting at shutdown
//! returns what it has (nothing) and the server drains like any other request. The `Host` check of rmcp's is off because the token, not the
//! address, is what authorizes a request (a DNS-rebinding page has no token).

use std::sync::Arc;

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::{header, Method},
    middleware::{from_fn, Next},
    web, Error, FromRequest, HttpMessage, HttpResponse,
};
use rmcp_actix_web::transport::{LocalSessionManager, StreamableHttpService};
use serde_json::{json, Value};

use super::server::HubTools;
use crate::{
    error::ApiError,
    http::{auth, read_body_limited},
    service::Caller,
    state::Hub,
    store::OwnedAgent,
};

/// Largest JSON-RPC message accepted: tool arguments are small (the largest is a provider
/// secret), and a batch of acks is at most 1,000 ids.
pub const MAX_MCP_BODY: usize = 256 * 1024;

pub type McpService = StreamableHttpService<HubTools, LocalSessionManager>;

/// The transport, built once and shared by every worker.
pub fn service(hub: &Hub) -> McpService {
    let tools = HubTools::new(Arc::new(hub.clone()));
    StreamableHttpService::builder()
        .service_factory(Arc::new(move || Ok(tools.clone())))
        .session_manager(Arc::new(LocalSessionManager::default()))
        .stateful_mode(false)
        .json_response(true)
        .allowed_hosts(Vec::new())
        // Checked below, with the hub's JSON error.
        .max_request_body_bytes(MAX_MCP_BODY + 1)
        .on_request_fn(|req, extensions| {
            if let Some(agent) = req.extensions().get::<OwnedAgent>() {
                extensions.insert(agent.clone());
            }
        })
        .build()
}

pub fn configure(mcp: McpService) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.service(
            web::scope("/v1/mcp")
                .wrap(from_fn(admit))
                .service(mcp.scope()),
        );
    }
}

/// Origin, then token, then body: what a request must pass before rmcp reads it.
/// Errors before the body are the hub's JSON errors; a body that is not a JSON-RPC
/// message is answered in JSON-RPC's terms.
async fn admit(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let hub = req
        .app_data::<web::Data<Hub>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("the hub is not in the app data"))?;
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !origin_allowed(origin, &hub.public_url, &hub.config.mcp_allowed_origins) {
            return Err(ApiError::ForbiddenOrigin.into());
        }
    }
    let token = auth::bearer_token(req.request()).ok_or(ApiError::Unauthorized)?;
    let agent = match auth::authenticate(&hub, token).await? {
        Caller::Agent(agent) => agent,
        Caller::Owner(_) => return Err(ApiError::AgentOnly.into()),
    };
    req.extensions_mut().insert(agent);
    if req.method() == Method::POST {
        let mut payload = req.take_payload();
        let payload = web::Payload::from_request(req.request(), &mut payload).await?;
        let body = read_body_limited(req.request(), payload, MAX_MCP_BODY).await?;
        if let Some(refused) = refuse_message(&body) {
            return Ok(req.into_response(refused).map_into_right_body());
        }
        req.set_payload(actix_web::dev::Payload::from(body));
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// A body that is not one JSON-RPC message gets JSON-RPC's own error, 400, rather than
/// the transport's plain-text 415: a parse error (-32700) for what is not JSON, an invalid
/// request (-32600) for JSON that is not a message (MCP has no batches).
fn refuse_message(body: &[u8]) -> Option<HttpResponse> {
    let refuse = |code: i64, message: String| {
        Some(HttpResponse::BadRequest().json(json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": code, "message": message},
        })))
    };
    match serde_json::from_slice::<Value>(body) {
        Err(e) => refuse(-32700, format!("parse error: {e}")),
        Ok(Value::Object(m)) if m.get("jsonrpc").and_then(Value::as_str) == Some("2.0") => None,
        Ok(_) => refuse(
            -32600,
            "invalid request: the body must be one JSON-RPC 2.0 message, an object with \"jsonrpc\": \"2.0\"".into(),
        ),
    }
}

/// `scheme://host[:port]` of a URL or an `Origin`, lowercased, without a default port.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    let authority = match (scheme.as_str(), authority.rsplit_once(':')) {
        ("http", Some((host, "80"))) | ("https", Some((host, "443"))) => host.to_owned(),
        _ => authority,
    };
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

fn origin_allowed(origin: &str, public_url: &str, extra: &[String]) -> bool {
    let Some(origin) = origin_of(origin) else {
        return false;
    };
    std::iter::once(public_url)
        .chain(extra.iter().map(String::as_str))
        .filter_map(origin_of)
        .any(|allowed| allowed == origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hubs_own_origin_and_the_listed_ones_pass() {
        let extra = vec!["http://localhost:6274".to_owned()];
        for ok in [
            "https://hub.example.com",
            "HTTPS://Hub.Example.com:443",
            "http://localhost:6274",
        ] {
            assert!(
                origin_allowed(ok, "https://hub.example.com/", &extra),
                "{ok}"
            );
        }
        for bad in [
            "https://evil.example",
            "http://hub.example.com",
            "https://hub.example.com:8443",
            "https://hub.example.com.evil.example",
            "null",
            "",
        ] {
            assert!(
                !origin_allowed(bad, "https://hub.example.com", &extra),
                "{bad}"
            );
        }
    }
}
