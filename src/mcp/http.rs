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
//! sessions it never ends. The `Host` check of rmcp's is off because the token, not the
//! address, is what authorizes a request (a DNS-rebinding page has no token).

use std::sync::Arc;

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::{header, Method},
    middleware::{from_fn, Next},
    web, Error, FromRequest, HttpMessage,
};
use rmcp_actix_web::transport::{LocalSessionManager, StreamableHttpService};

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
        .cancellation_token(hub.shutdown.clone())
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
async fn admit(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
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
        req.set_payload(actix_web::dev::Payload::from(body));
    }
    next.call(req).await
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
