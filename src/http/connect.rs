//! `GET /v1/agent/connect`: an agent's WebSocket.

use std::time::Instant;

use actix::Actor;
use actix_web::{get, web, HttpRequest, HttpResponse};
use tokio::sync::mpsc;

use crate::{
    error::{ApiError, ErrorBody},
    http::auth::{authenticate, bearer_token},
    service::Caller,
    socket::{
        session::{read_socket, AgentSession},
        wire,
    },
    state::Hub,
};

/// Largest frame, and largest reassembled message, an agent may send (tool calls are
/// small; this leaves room).
const MAX_INBOUND_FRAME: usize = 1024 * 1024;

pub fn configure(routes: &mut super::Routes) {
    routes.documented(connect);
}

/// The agent's WebSocket.
///
/// Upgraded to a WebSocket: every event of the agent's webhooks arrives on it in order,
/// and the agent acks them and calls its tools over it. One agent has one live socket;
/// a new connection replaces the old one. The frames, tools, guarantees and close codes
/// are in `docs/agent-protocol.md`.
#[utoipa::path(
    tag = "agent",
    operation_id = "connectAgent",
    security(("agentToken" = [])),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol (see `docs/agent-protocol.md`)"),
        (status = 400, description = "Not a WebSocket handshake"),
        (status = 426, description = "A WebSocket version other than 13"),
        (status = 401, description = "No agent token (an owner token is refused too)", body = ErrorBody),
    ),
)]
#[get("/v1/agent/connect")]
async fn connect(
    hub: web::Data<Hub>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let token = bearer_token(&req).ok_or(ApiError::Unauthorized)?;
    let authenticated_at = Instant::now();
    let Caller::Agent(agent) = authenticate(&hub, token).await? else {
        // An owner token is not an agent.
        return Err(ApiError::Unauthorized.into());
    };
    // Room for a full window of deliveries plus control frames and call results.
    let (out_tx, out_rx) = mpsc::channel(hub.config.window as usize + 64);
    let (response, reader) = wire::accept(&req, body, out_rx, MAX_INBOUND_FRAME)?;
    let session = AgentSession::new(hub.into_inner(), agent, authenticated_at, out_tx).start();
    actix_web::rt::spawn(read_socket(reader, session));
    Ok(response)
}
