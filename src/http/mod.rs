//! HTTP routes, one file per resource. Handlers are thin: they read the request, call
//! [`crate::service`], and shape the response.
//!
//! Every route is registered through [`Routes`], which is also where the OpenAPI document
//! ([`openapi`]) is collected from, so that the document and the routes cannot differ.

pub mod account;
pub mod agents;
pub mod auth;
pub mod connect;
pub mod dashboard;
pub mod deliveries;
pub mod health;
pub mod ingest;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod test_events;
pub mod webhooks;

use std::time::Duration;

use actix_web::{
    dev::HttpServiceFactory,
    http::{header, Method},
    web, FromRequest, Handler, HttpRequest, Responder,
};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::{service_config::ServiceConfig, OpenApiFactory};

use crate::{admission::BodySlot, error::ApiError, service::input, state::Hub};

/// Management bodies are small JSON objects.
const MAX_MANAGEMENT_BODY: usize = 64 * 1024;

/// The only way a file of `src/http/` registers a route. A documented route is an actix
/// handler (`#[get(…)]` and the like) that also carries `#[utoipa::path]`: its method and
/// path are written once, in the actix attribute, and `utoipa-actix-web` collects its
/// operation from the very call that registers it. A route without `#[utoipa::path]` does
/// not compile there. What is left out of the document on purpose goes through
/// [`Routes::left_out`], which keeps a list that a test holds to the routes meant to be
/// left out, so that a route cannot be left out by accident either.
pub struct Routes<'c, 's> {
    config: &'c mut ServiceConfig<'s>,
    left_out: Vec<LeftOut>,
}

/// A route registered outside the OpenAPI document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub method: Method,
    pub path: &'static str,
}

impl<'c, 's> Routes<'c, 's> {
    pub fn new(config: &'c mut ServiceConfig<'s>) -> Self {
        Self {
            config,
            left_out: Vec::new(),
        }
    }

    pub fn documented<F>(&mut self, service: F) -> &mut Self
    where
        F: HttpServiceFactory + OpenApiFactory + 'static,
    {
        self.config.service(service);
        self
    }

    pub fn left_out<F, Args>(&mut self, method: Method, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.config
            .route(path, web::method(method.clone()).to(handler));
        self.left_out.push(LeftOut { method, path });
        self
    }

    /// What was registered through [`Routes::left_out`], in order.
    pub fn into_left_out(self) -> Vec<LeftOut> {
        self.left_out
    }
}

/// Every route of the API but `POST /v1/mcp` (see [`crate::mcp::http`]), which
/// [`crate::startup`] mounts beside these.
pub fn configure(routes: &mut Routes) {
    // A request is matched against the routes in this order, each dynamic path a regex:
    // the busiest routes, ingest and the agent socket, come first, so that a delivery is
    // not tried against every management route before its own.
    ingest::configure(routes);
    connect::configure(routes);
    health::configure(routes);
    dashboard::configure(routes);
    account::configure(routes);
    agents::configure(routes);
    webhooks::configure(routes);
    test_events::configure(routes);
    deliveries::configure(routes);
    metrics::configure(routes);
    openapi::configure(routes);
}

/// Registers [`configure`]'s routes on a worker's app.
pub fn register(config: &mut web::ServiceConfig) {
    let mut config = ServiceConfig::new(config);
    configure(&mut Routes::new(&mut config));
}

/// `{agent}` in a path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AgentPath {
    /// An agent id (`agt_…`); with an agent token, also `me`.
    pub agent: String,
}

/// `{agent}` and `{webhook}` in a path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WebhookPath {
    /// An agent id (`agt_…`); with an agent token, also `me`.
    pub agent: String,
    /// A webhook id (`whk_…`) of that agent.
    pub webhook: String,
}

/// `{agent}`, `{webhook}` and `{delivery}` in a path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DeliveryPath {
    /// An agent id (`agt_…`); with an agent token, also `me`.
    pub agent: String,
    /// A webhook id (`whk_…`) of that agent.
    pub webhook: String,
    /// A delivery id (`dlv_…`) of that webhook.
    pub delivery: String,
}

/// Reads a body up to `limit` bytes: a declared length over the limit is refused before
/// reading, and a streamed body is cut off as soon as it passes the limit, so an oversized
/// request never sits in memory whole. The body must arrive within the body timeout, and
/// its sender's address must have a slot for it (see [`crate::admission`]).
pub async fn read_body_limited(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let (slot, timeout) = body_slot(req)?;
    let timed_out = || ApiError::BodyTimeout {
        secs: timeout.as_secs_f64().ceil() as u64,
    };
    tokio::select! {
        read = actix_web::rt::time::timeout(timeout, read_body(req, payload, limit, &slot)) => {
            read.unwrap_or_else(|_| Err(timed_out()))
        }
        // Given up to make room for newer bodies: this one has been arriving longest.
        () = slot.given_up.cancelled() => Err(timed_out()),
    }
}

/// A slot to read a body from this request's peer, and how long the body may take.
fn body_slot(req: &HttpRequest) -> Result<(BodySlot, Duration), ApiError> {
    let Some(hub) = req.app_data::<web::Data<Hub>>() else {
        return Err(ApiError::internal("the hub is not in the app data"));
    };
    let peer = req.peer_addr().map(|a| a.ip());
    let slot = hub
        .body_slots
        .acquire(peer)
        .map_err(|_| ApiError::TooManyInProgress)?;
    Ok((slot, hub.config.body_timeout))
}

/// Largest body read only to be thrown away, so that an early answer (a 429) leaves the
/// connection usable for the sender's next request: an HTTP/1.1 connection can carry the
/// next request only once this one's body is off it. A larger body closes the connection.
const MAX_DISCARDED_BODY: usize = 1024 * 1024;

/// How long a body read only to be thrown away may take: a sender that is told to come
/// back has sent its body with its head, or will not get to keep the connection.
const DISCARD_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads and drops a small body, briefly; what is larger, or slower, is left unread, and
/// the connection closes after the answer. It holds a body slot while it reads, and gives
/// it up like any other body when newer ones need the room.
pub async fn discard_body(req: &HttpRequest, mut payload: web::Payload) {
    if declared_length(req).is_some_and(|len| len > MAX_DISCARDED_BODY as u64) {
        return;
    }
    let Ok((slot, timeout)) = body_slot(req) else {
        return;
    };
    let drain = async {
        let mut read = 0;
        while let Some(Ok(chunk)) = payload.next().await {
            read += chunk.len();
            if read > MAX_DISCARDED_BODY {
                return;
            }
        }
    };
    tokio::select! {
        _ = actix_web::rt::time::timeout(timeout.min(DISCARD_TIMEOUT), drain) => {}
        () = slot.given_up.cancelled() => {}
    }
}

async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    slot: &BodySlot,
) -> Result<Bytes, ApiError> {
    let declared = declared_length(req);
    if let Some(len) = declared {
        if len > limit as u64 {
            return Err(ApiError::PayloadTooLarge { limit });
        }
    }
    // Room for what has arrived, not for what the head declares: a declared length costs
    // the sender nothing to state.
    let mut buf = BytesMut::with_capacity(declared.map_or(8 * 1024, |l| l.min(64 * 1024) as usize));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::invalid("body", format!("could not read the body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        slot.add_bytes(chunk.len());
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The body's length as the request's head declares it, if it does.
fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// A management request's JSON object body; the content type must say JSON.
pub async fn json_object(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<input::Object, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::invalid(
            "content-type",
            "the content type must be application/json",
        ));
    }
    let body = read_body_limited(req, payload, MAX_MANAGEMENT_BODY).await?;
    input::parse_object(&body)
}
