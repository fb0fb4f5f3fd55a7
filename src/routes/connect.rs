//! `GET /v1/agent/connect`: an agent's WebSocket.

use actix::Actor;
use actix_web::{web, HttpRequest, HttpResponse};
use tokio::sync::mpsc;

use crate::{
    actors::session::{read_socket, write_socket, AgentSession},
    auth::{authenticate, bearer_token, Caller},
    error::ApiError,
    service::Hub,
};

/// Largest frame an agent may send (tool calls are small; this leaves room).
const MAX_INBOUND_FRAME: usize = 1024 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/agent/connect", web::get().to(connect));
}

async fn connect(
    hub: web::Data<Hub>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let token = bearer_token(&req).ok_or(ApiError::Unauthorized)?;
    let Caller::Agent(agent) = authenticate(&hub, token).await? else {
        // An owner token is not an agent.
        return Err(ApiError::Unauthorized.into());
    };
    let (response, socket, stream) = actix_ws::handle(&req, body)?;
    let stream = stream.max_frame_size(MAX_INBOUND_FRAME);
    // Room for a full window of deliveries plus control frames and call results.
    let (out_tx, out_rx) = mpsc::channel(hub.config.window as usize + 64);
    let session = AgentSession::new(hub.into_inner(), agent, out_tx).start();
    actix_web::rt::spawn(write_socket(socket, out_rx));
    actix_web::rt::spawn(read_socket(stream, session));
    Ok(response)
}
