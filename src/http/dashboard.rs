//! The dashboard: its page and assets (embedded in the binary, nothing to build), the
//! sign-in session behind its cookie, and the live activity stream its webhook view
//! listens to. Every action the page takes is a call to the JSON API, so the dashboard
//! goes through the same service functions and rules as any other caller.

use std::{convert::Infallible, time::Duration};

use actix_web::{
    get,
    http::{header, Method},
    web, HttpRequest, HttpResponse, HttpResponseBuilder,
};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;
use utoipa::IntoParams;

use crate::{
    clock,
    error::{ApiError, ErrorBody},
    http::auth::{self, Session},
    service::{input, webhooks, Caller},
    state::Hub,
};

const INDEX_HTML: &str = include_str!("../dashboard/index.html");
const APP_JS: &str = include_str!("../dashboard/app.js");
const APP_CSS: &str = include_str!("../dashboard/app.css");
const ICON_SVG: &str = include_str!("../dashboard/icon.svg");

/// Only our own files run or style the page; what it shows (webhook names, payloads) is
/// attacker-controlled, so no inline script could run even if some markup slipped in.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Owner tokens are 52 characters; anything much longer is not one.
const MAX_TOKEN: usize = 512;

/// How often a live activity stream re-reads the first page.
const STREAM_POLL: Duration = Duration::from_secs(1);
/// A comment line this often keeps idle streams open through proxies.
const STREAM_KEEPALIVE_POLLS: u32 = 15;
/// A stream ends after this long and the browser reconnects (after the `retry` delay),
/// which authenticates it again: a signed-out or expired session stops being served.
const STREAM_LIFETIME: Duration = Duration::from_secs(300);
const STREAM_RETRY_MS: u32 = 2000;

/// The page, its files and its cookie session are left out of the OpenAPI document: they
/// are the dashboard's own, called by its script, with a cookie and a CSRF token that no
/// other client has. The live activity stream is documented, because a bearer token
/// reads it as well as the cookie does.
pub fn configure(routes: &mut super::Routes) {
    routes
        .left_out(Method::GET, "/", index)
        .left_out(Method::GET, "/dashboard/app.js", app_js)
        .left_out(Method::GET, "/dashboard/app.css", app_css)
        .left_out(Method::GET, "/dashboard/icon.svg", icon_svg)
        .left_out(Method::POST, "/dashboard/session", sign_in)
        .left_out(Method::GET, "/dashboard/session", current_session)
        .left_out(Method::DELETE, "/dashboard/session", sign_out)
        // Registered before the delivery routes, whose `{delivery}` would match `stream`.
        .documented(activity_stream);
}

/// The headers every dashboard file is served with.
fn page_response(content_type: &'static str) -> HttpResponseBuilder {
    let mut resp = HttpResponse::Ok();
    resp.content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        // Small files that change with the binary: always revalidate.
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    resp
}

/// The page. A browser that sends no session cookie is signed out for sure, and the page
/// says so, so that its script shows the sign-in form at once rather than asking first.
async fn index(req: HttpRequest) -> HttpResponse {
    let mut resp = page_response("text/html; charset=utf-8");
    resp.insert_header((header::VARY, "Cookie"));
    if auth::session_cookie_value(&req).is_some() {
        resp.body(INDEX_HTML)
    } else {
        resp.body(INDEX_HTML.replacen("<body>", "<body data-signed-out>", 1))
    }
}

async fn app_js() -> HttpResponse {
    page_response("text/javascript; charset=utf-8").body(APP_JS)
}

async fn app_css() -> HttpResponse {
    page_response("text/css; charset=utf-8").body(APP_CSS)
}

async fn icon_svg() -> HttpResponse {
    page_response("image/svg+xml").body(ICON_SVG)
}

/// What the page learns about its session; the CSRF token is for its script to send back.
fn session_json(session: &Session) -> serde_json::Value {
    json!({
        "accountId": session.stored.account_id,
        "name": session.stored.account_name,
        "csrfToken": session.csrf_token.expose(),
        "expiresAt": clock::rfc3339(session.stored.expires_at),
    })
}

/// `POST /dashboard/session {token}`: sign in with an owner token.
///
/// Another site cannot sign a visitor in to its own account here: the body must be JSON,
/// which a cross-site form cannot send and a cross-site script may not without CORS.
async fn sign_in(
    hub: web::Data<Hub>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = super::json_object(&req, payload).await?;
    let token = input::required_str(&body, "token", MAX_TOKEN)?;
    let signed_in = auth::sign_in(&hub, &token).await?;
    Ok(HttpResponse::Ok()
        .cookie(auth::session_cookie(&hub, &req, &signed_in.session_id))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(session_json(&signed_in.session)))
}

/// `GET /dashboard/session`: who is signed in, and the CSRF token for the page's script.
async fn current_session(hub: web::Data<Hub>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let cookie = auth::session_cookie_value(&req).ok_or(ApiError::Unauthorized)?;
    let session = auth::find_session(&hub, &cookie)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(session_json(&session)))
}

/// `DELETE /dashboard/session`: sign out. A live session is ended only with its CSRF
/// token (so another site cannot sign a visitor out); the cookie is cleared either way.
async fn sign_out(hub: web::Data<Hub>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if let Some(cookie) = auth::session_cookie_value(&req) {
        if let Some(session) = auth::find_session(&hub, &cookie).await? {
            auth::check_request_csrf(&req, &session)?;
            auth::sign_out(&hub, &session).await?;
        }
    }
    Ok(HttpResponse::NoContent()
        .cookie(auth::cleared_session_cookie(&hub, &req))
        .finish())
}

/// The activity stream's query, read as text like the list's.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// How many, 1 to 500; 50 when left out.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// Only deliveries in this status.
    #[param(value_type = Option<crate::domain::DeliveryStatus>)]
    status: Option<String>,
    /// Only deliveries of this event type.
    event: Option<String>,
    /// Only deliveries received at or after this time (RFC 3339).
    since: Option<String>,
    /// Only deliveries received before this time (RFC 3339).
    until: Option<String>,
    /// Only the delivery with this id, or with this provider's delivery id.
    q: Option<String>,
}

/// A webhook's activity, live.
///
/// The first page of the activity list as Server-Sent Events: a `deliveries` event (the
/// list's JSON) at once and again whenever the page changes, a comment line to keep it
/// open, and a `failed` event (an error body) if reading fails. It ends after five
/// minutes, and the client reconnects. The dashboard reads it with its session cookie;
/// a bearer token reads it too.
//
// The stream re-reads the page through the same service function as the list endpoint,
// so ownership and validation are the list's; polling a page once a second is cheap next
// to the disk writes that change it, and needs no hook into the delivery writer.
#[utoipa::path(
    tag = "deliveries",
    operation_id = "streamDeliveries",
    params(super::WebhookPath, StreamQuery),
    security(("ownerToken" = []), ("agentToken" = [])),
    responses(
        (status = 200, description = "`event: deliveries` with a `DeliveryPage` as `data`, then again on each change",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "`limit` or `status` is invalid", body = ErrorBody),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 404, description = "No such webhook of the caller's", body = ErrorBody),
    ),
)]
#[get("/v1/agents/{agent}/webhooks/{webhook}/deliveries/stream")]
async fn activity_stream(
    hub: web::Data<Hub>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<super::WebhookPath>,
    query: web::Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    let credential = auth::Credential::of(&req).ok_or(ApiError::Unauthorized)?;
    let super::WebhookPath { agent, webhook } = path.into_inner();
    let StreamQuery {
        limit,
        status,
        event,
        since,
        until,
        q,
    } = query.into_inner();
    let query = webhooks::ActivityQuery {
        limit,
        before: None,
        status,
        event,
        since,
        until,
        q,
    };
    // Authorize and validate before streaming, so a bad request gets its JSON error.
    let first = webhooks::list_deliveries(&hub, &caller, &agent, &webhook, &query).await?;
    let first = serde_json::to_string(&first).map_err(ApiError::internal)?;
    let head = Bytes::from(format!(
        "retry: {STREAM_RETRY_MS}\n\n{}",
        sse_event("deliveries", &first)
    ));
    let poll = ActivityPoll {
        hub,
        caller,
        credential,
        agent,
        webhook,
        query,
        last: first,
        started: Instant::now(),
        quiet_polls: 0,
        ended: false,
    };
    let body = stream::once(async move { Ok::<_, Infallible>(head) })
        .chain(stream::unfold(poll, next_activity_event));
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // Proxies that buffer responses would hold events back.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

struct ActivityPoll {
    hub: web::Data<Hub>,
    caller: Caller,
    /// Checked again at every poll: the stream ends with the token or session it began with.
    credential: auth::Credential,
    agent: String,
    webhook: String,
    query: webhooks::ActivityQuery,
    /// The page as last sent, to send only changes.
    last: String,
    started: Instant,
    quiet_polls: u32,
    ended: bool,
}

fn sse_event(name: &str, data: &str) -> String {
    // `data` is compact JSON: one line, as an SSE data field must be.
    format!("event: {name}\ndata: {data}\n\n")
}

async fn next_activity_event(
    mut poll: ActivityPoll,
) -> Option<(Result<Bytes, Infallible>, ActivityPoll)> {
    if poll.ended {
        return None;
    }
    loop {
        if poll.started.elapsed() >= STREAM_LIFETIME {
            return None;
        }
        tokio::select! {
            _ = poll.hub.shutdown.cancelled() => return None,
            _ = tokio::time::sleep(STREAM_POLL) => {}
        }
        let page = match poll.credential.still_valid(&poll.hub).await {
            Ok(true) => webhooks::list_deliveries(
                &poll.hub,
                &poll.caller,
                &poll.agent,
                &poll.webhook,
                &poll.query,
            )
            .await
            .and_then(|page| serde_json::to_string(&page).map_err(ApiError::internal)),
            Ok(false) => Err(ApiError::Unauthorized),
            Err(e) => Err(e),
        };
        match page {
            Ok(page) if page != poll.last => {
                let event = sse_event("deliveries", &page);
                poll.last = page;
                poll.quiet_polls = 0;
                return Some((Ok(Bytes::from(event)), poll));
            }
            Ok(_) => {
                poll.quiet_polls += 1;
                if poll.quiet_polls >= STREAM_KEEPALIVE_POLLS {
                    poll.quiet_polls = 0;
                    return Some((Ok(Bytes::from_static(b": keepalive\n\n")), poll));
                }
            }
            Err(e) => {
                if let ApiError::Internal(cause) = &e {
                    tracing::error!(error = %cause, "activity stream failed");
                }
                poll.ended = true;
                let body = serde_json::to_string(&e.body()).unwrap_or_default();
                return Some((Ok(Bytes::from(sse_event("failed", &body))), poll));
            }
        }
    }
}
