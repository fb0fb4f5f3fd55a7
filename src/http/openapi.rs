//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of the HTTP API.
//!
//! It is collected, once at startup, by running [`super::configure`] (the function every
//! worker registers its routes with) on an app that is then dropped: each documented
//! route's operation comes from the `#[utoipa::path]` on the handler that call registers,
//! and its schemas are derived from the types the handler answers with. What is not
//! registered there is added here by hand: `POST /v1/mcp`, which [`crate::startup`]
//! mounts from `crate::mcp` (this module may not name it: `mcp` imports `http`). The
//! integration test `tests/it/openapi.rs` requests every documented operation on a live
//! hub, so that a hand-written one that names a route the app does not have fails it.

use actix_web::{get, http::header::ContentType, web, App, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::Value;
use utoipa::{
    openapi::{
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
        OpenApi as Document,
    },
    Modify, OpenApi, ToSchema,
};
use utoipa_actix_web::UtoipaApp;

use super::{LeftOut, Routes};
use crate::{
    crypto::{AGENT_TOKEN_PREFIX, OWNER_TOKEN_PREFIX},
    error::{ApiError, ErrorBody},
};

pub fn configure(routes: &mut Routes) {
    routes.documented(openapi_json);
}

#[derive(OpenApi)]
#[openapi(
    paths(mcp),
    modifiers(&BearerTokens),
    tags(
        (name = "account", description = "The owner's own account"),
        (name = "agents", description = "An owner's agents"),
        (name = "webhooks", description = "An agent's webhooks, managed by its owner or by the agent itself"),
        (name = "deliveries", description = "What a webhook received, and handing it to the agent again"),
        (name = "ingest", description = "Where providers send events"),
        (name = "agent", description = "How an agent receives events and calls its tools: see `docs/agent-protocol.md`"),
        (name = "operations", description = "Health, metrics, and this document"),
    ),
)]
struct ApiDoc;

/// The two kinds of bearer token. Both are `Authorization: Bearer …`; which one an
/// operation takes is its `security`.
struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, prefix, description) in [
            (
                "ownerToken",
                OWNER_TOKEN_PREFIX,
                "An owner's account token, made with `hookhub account create` (the first is printed when the hub first starts): manages the owner's agents and their webhooks.",
            ),
            (
                "agentToken",
                AGENT_TOKEN_PREFIX,
                "An agent's token, shown when the agent is created: opens its socket, calls MCP, and manages its own webhooks (as agent `me`).",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format(format!("{prefix}…"))
                        .description(Some(description))
                        .build(),
                ),
            );
        }
    }
}

/// The document as served: collected and serialized once, at startup.
pub struct OpenApiJson(Bytes);

impl OpenApiJson {
    pub fn build() -> Result<Self, serde_json::Error> {
        Ok(Self(Bytes::from(collect().document.to_json()?)))
    }
}

/// The document, and the routes registered beside it but left out of it.
pub struct Collected {
    pub document: Document,
    pub left_out: Vec<LeftOut>,
}

/// Registers every route on an app that is then dropped, keeping what the registration
/// documented and what it left out.
pub fn collect() -> Collected {
    let mut left_out = Vec::new();
    let (_, document) = UtoipaApp::from(App::new())
        .openapi(ApiDoc::openapi())
        .configure(|config| {
            let mut routes = Routes::new(config);
            super::configure(&mut routes);
            left_out = routes.into_left_out();
        })
        .split_for_parts();
    Collected { document, left_out }
}

/// This document.
#[utoipa::path(
    tag = "operations",
    operation_id = "openapi",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of the API", body = Object),
        (status = 500, description = "The server was built without its document", body = ErrorBody),
    ),
)]
#[get("/v1/openapi.json")]
async fn openapi_json(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let document = req
        .app_data::<web::Data<OpenApiJson>>()
        .ok_or_else(|| ApiError::internal("the OpenAPI document is not in the app data"))?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(document.0.clone()))
}

/// One JSON-RPC 2.0 message, as MCP sends them: a request (`method`, `id`), a
/// notification (`method`, no `id`), or a response (`id` and `result` or `error`).
/// Described here, next to the operation, because the messages are rmcp's types.
#[derive(ToSchema)]
pub struct JsonRpcMessage {
    /// Always `"2.0"`.
    pub jsonrpc: String,
    #[schema(value_type = Option<Object>)]
    pub id: Option<Value>,
    pub method: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
}

/// The agent's tools over MCP.
///
/// The Model Context Protocol's Streamable HTTP transport, stateless (no
/// `Mcp-Session-Id`: every request carries the agent's token) and answering in JSON. The
/// tools are the agent's socket tools, with `next_events` and `ack_events` to pull its
/// events instead of having them pushed; what they take and return is in
/// `docs/agent-protocol.md`. A browser page may call it only from an allowed `Origin`.
/// Other methods on `/v1/mcp` are the transport's, and it answers them 405 (stateless, it
/// has no stream to open or session to end).
#[utoipa::path(
    post,
    path = "/v1/mcp",
    tag = "agent",
    operation_id = "mcp",
    security(("agentToken" = [])),
    request_body(
        content = JsonRpcMessage,
        description = "One JSON-RPC 2.0 message (no batches). The `Accept` header must list both `application/json` and `text/event-stream`, as the transport asks.",
        example = json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "example", "version": "1"},
            },
        }),
    ),
    responses(
        (status = 200, description = "The JSON-RPC response to a request", body = JsonRpcMessage),
        (status = 202, description = "A notification or a response, taken: no body"),
        (status = 400, description = "Not one JSON-RPC 2.0 message: a JSON-RPC error, -32700 (not JSON) or -32600 (not a message)", body = JsonRpcMessage),
        (status = 401, description = "No agent token (an owner token is refused too)", body = ErrorBody),
        (status = 403, description = "A browser page of an Origin that is not allowed", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 406, description = "The `Accept` header does not list both `application/json` and `text/event-stream`"),
        (status = 413, description = "The body is over 256 KiB", body = ErrorBody),
        (status = 415, description = "The content type is not `application/json`"),
        (status = 429, description = "Too many bodies still arriving from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
#[allow(
    dead_code,
    reason = "only its #[utoipa::path] is used: rmcp serves the route"
)]
fn mcp() {}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        domain::{DeliveryStatus, Provider, MAX_NAME},
        service::webhooks::{MAX_PAGE, MAX_PROVIDER_SECRET},
    };

    fn document() -> Value {
        serde_json::to_value(collect().document).unwrap()
    }

    /// The `schema` attributes take only literals: these hold them to the constants the
    /// code checks with.
    #[test]
    fn the_limits_in_the_schemas_are_the_ones_the_code_checks() {
        let doc = document();
        let schema = |name: &str| doc["components"]["schemas"][name].clone();
        assert_eq!(
            schema("NewAgent")["properties"]["name"]["maxLength"],
            MAX_NAME
        );
        assert_eq!(
            schema("NewWebhook")["properties"]["name"]["maxLength"],
            MAX_NAME
        );
        assert_eq!(
            schema("ProviderSecret")["properties"]["secret"]["maxLength"],
            MAX_PROVIDER_SECRET
        );
        let statuses: Vec<_> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(schema("DeliveryStatus")["enum"], json!(statuses));
        let providers: Vec<_> = Provider::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(schema("Provider")["enum"], json!(providers));
        for path in [
            "/v1/agents/{agent}/webhooks/{webhook}/deliveries",
            "/v1/agents/{agent}/webhooks/{webhook}/deliveries/stream",
        ] {
            let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
            let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
            assert_eq!(limit["schema"]["maximum"], MAX_PAGE, "{path}");
        }
    }

    #[test]
    fn the_metrics_content_type_is_the_one_served() {
        let doc = document();
        let content = &doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
        assert!(
            content.get(crate::metrics::CONTENT_TYPE).is_some(),
            "{content}"
        );
    }
}
