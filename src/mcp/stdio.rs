//! `hookhub mcp`: the hub's MCP tools over stdin and stdout, for clients that start a
//! command (Claude Desktop, Claude Code, IDE agents).
//!
//! It holds no state of its own: it is an MCP server on stdio whose tools are the running
//! hub's, reached with rmcp's Streamable HTTP client at `HOOKHUB_URL/v1/mcp` with the
//! agent's token. Tools are listed and called there, so the two transports cannot differ;
//! a tool error comes back as the hub made it. It connects before it answers anything, so
//! a wrong URL or token ends it at once with the reason on stderr.
//!
//! stdout carries MCP messages only; logs go to stderr (`crate::logging`).

use rmcp::{
    model::{
        CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams,
        ResultType, ServerConfig,
    },
    service::{RequestContext, RunningService, ServiceError},
    transport::{
        streamable_http_client::StreamableHttpClientTransportConfig, StreamableHttpClientTransport,
    },
    ErrorData as McpError, RoleClient, RoleServer, ServerHandler, ServiceExt,
};

use super::server::server_info;
use crate::crypto::Secret;

/// The stdio server: every request goes to the hub.
struct Relay {
    hub: RunningService<RoleClient, ()>,
}

fn upstream_error(e: ServiceError) -> McpError {
    match e {
        ServiceError::McpError(e) => e,
        other => McpError::internal_error(format!("the call to the hub failed: {other}"), None),
    }
}

impl ServerHandler for Relay {
    fn get_info(&self) -> ServerConfig {
        server_info()
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        // Rebuilt rather than passed on: the hub's answer is shaped for the revision the
        // relay negotiated with it, which need not be the one its own client negotiated.
        let listed = self.hub.list_tools(request).await.map_err(upstream_error)?;
        let mut tools = ListToolsResult::with_all_items(listed.tools);
        tools.next_cursor = listed.next_cursor;
        Ok(tools)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        match self
            .hub
            .call_tool_once(request)
            .await
            .map_err(upstream_error)?
        {
            CallToolResponse::Complete(mut result) => {
                // As above: the revision of the client on stdio decides this field.
                result.result_type = Some(ResultType::COMPLETE);
                Ok(result.into())
            }
            other => Ok(other),
        }
    }
}

/// Serves MCP on stdio until the client closes stdin.
pub async fn run(hub_url: &str, token: &Secret) -> Result<(), String> {
    let tls = crate::client::tls_config()?;
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let url = format!("{}/v1/mcp", hub_url.trim_end_matches('/'));
    let transport = StreamableHttpClientTransport::with_client(
        http,
        StreamableHttpClientTransportConfig::with_uri(url.as_str()).auth_header(token.expose()),
    );
    let hub = ()
        .serve(transport)
        .await
        .map_err(|e| match e {
            // The SDK's words for a 401 name its own types; say what to do instead.
            e if e.to_string().contains("Auth required") => format!(
                "{url} refused HOOKHUB_AGENT_TOKEN (401): it must be an agent token (hh_agent_…) of this hub"
            ),
            e => format!("cannot start an MCP session with {url}: {e}"),
        })?;
    tracing::info!(url = %url, "connected to the hub; serving MCP on stdio");
    let server = Relay { hub }
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("MCP on stdio: {e}"))?;
    server
        .waiting()
        .await
        .map_err(|e| format!("MCP on stdio: {e}"))?;
    Ok(())
}
