//! The agent's tools for LLM agents, through the Model Context Protocol: the eight
//! self-service tools of the socket ([`crate::service::tools`]) and the pull side of the
//! agent's queue ([`crate::service::events`]), served by the official Rust SDK (`rmcp`).
//!
//! - [`server`]: the MCP server itself, one [`server::HubTools`] whose tools run as the
//!   agent the request authenticated as.
//! - [`http`]: `POST /v1/mcp` (Streamable HTTP) on the hub, behind the agent token and an
//!   `Origin` check.
//! - [`stdio`]: `hookhub mcp`, the same tools over stdin and stdout for clients that start
//!   a command, relayed to a running hub's `/v1/mcp` with the agent's token.

pub mod http;
pub mod server;
pub mod stdio;
