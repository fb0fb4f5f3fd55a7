//! Who is calling: an owner (account token, or a dashboard session cookie) or an agent
//! (agent token).
//!
//! A dashboard session is made by signing in with an owner token and lives in an
//! `HttpOnly`, `SameSite=Strict` cookie. A request authenticated by that cookie that
//! changes something (any method but GET, HEAD, OPTIONS) must also carry the session's
//! CSRF token in `X-CSRF-Token`, which only the dashboard's own script can read; without
//! it the request is answered 401 like any other unauthenticated one. A bearer token,
//! when present, always wins and the cookie is ignored, so API callers are unaffected.
//!
//! The CSRF token is an HMAC of the session id, which only the cookie carries and the
//! database holds only hashed: it is stored nowhere, a copy of the database cannot give
//! it away, and the script that reads it learns nothing of the cookie from it.

use std::future::Future;
use std::pin::Pin;

use actix_web::{
    cookie::{time::Duration as CookieDuration, Cookie, SameSite},
    dev::Payload,
    http::{header, Method},
    web, FromRequest, HttpRequest,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    clock,
    crypto::{self, Secret, AGENT_TOKEN_PREFIX, OWNER_TOKEN_PREFIX},
    error::ApiError,
    service::Caller,
    state::Hub,
    store::DashboardSession,
};

/// The dashboard's session cookie.
pub const SESSION_COOKIE: &str = "hookhub_session";
/// The header that must repeat the session's CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Session ids are prefixed like tokens, so that a leaked one is recognisable.
const SESSION_ID_PREFIX: &str = "hh_session_";
/// What the session id, as the HMAC key, signs to make the session's CSRF token: a label
/// of its own, so that nothing else the id might ever key could come out as this token.
const CSRF_LABEL: &[u8] = b"hookhub dashboard CSRF token v1";

/// The bearer token of a request, if it has one.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Resolves a token to its caller. The row is found by the token's hash and the hash is
/// compared again in constant time, so the comparison leaks nothing even if an index
/// lookup ever changes into a scan.
pub async fn authenticate(hub: &Hub, token: &str) -> Result<Caller, ApiError> {
    let hash = crypto::hash_token(token);
    if token.starts_with(OWNER_TOKEN_PREFIX) {
        if let Some(account) = hub.store.account_by_token_hash(&hash).await? {
            if crypto::ct_eq(&account.token_hash, &hash) {
                return Ok(Caller::Owner(account.id));
            }
        }
    } else if token.starts_with(AGENT_TOKEN_PREFIX) {
        if let Some((agent, owned)) = hub.store.agent_by_token_hash(&hash).await? {
            if crypto::ct_eq(&agent.token_hash, &hash) {
                return Ok(Caller::Agent(owned));
            }
        }
    }
    Err(ApiError::Unauthorized)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let hub = req.app_data::<web::Data<Hub>>().cloned();
        let token = bearer_token(req).map(str::to_owned);
        let cookie = session_cookie_value(req);
        let csrf = (!is_safe_method(req.method())).then(|| csrf_header(req));
        Box::pin(async move {
            let Some(hub) = hub else {
                return Err(ApiError::Unauthorized);
            };
            if let Some(token) = token {
                return authenticate(&hub, &token).await;
            }
            let Some(cookie) = cookie else {
                return Err(ApiError::Unauthorized);
            };
            let session = find_session(&hub, &cookie)
                .await?
                .ok_or(ApiError::Unauthorized)?;
            if let Some(sent) = csrf {
                check_csrf(&session, sent.as_deref())?;
            }
            Ok(Caller::Owner(session.stored.account_id))
        })
    }
}

/// What a request authenticated with, kept to be checked again by a response that lasts
/// (the activity stream): a token rotated or a session ended meanwhile ends it.
pub enum Credential {
    Bearer(Secret),
    Session(Secret),
}

impl Credential {
    /// As [`Caller`]'s extraction reads it: a bearer token wins over the cookie.
    pub fn of(req: &HttpRequest) -> Option<Self> {
        match bearer_token(req) {
            Some(token) => Some(Self::Bearer(Secret::new(token.to_owned()))),
            None => session_cookie_value(req).map(|c| Self::Session(Secret::new(c))),
        }
    }

    pub async fn still_valid(&self, hub: &Hub) -> Result<bool, ApiError> {
        match self {
            Self::Bearer(token) => match authenticate(hub, token.expose()).await {
                Ok(_) => Ok(true),
                Err(ApiError::Unauthorized) => Ok(false),
                Err(e) => Err(e),
            },
            Self::Session(cookie) => Ok(find_session(hub, cookie.expose()).await?.is_some()),
        }
    }
}

// ---- Dashboard sessions ---------------------------------------------------------------

/// A live dashboard session: as stored, and the CSRF token its changes must carry.
pub struct Session {
    pub stored: DashboardSession,
    pub csrf_token: Secret,
}

/// A new sign-in: the cookie value (shown to the browser once, stored only hashed) and
/// the session.
pub struct SignedIn {
    pub session_id: Secret,
    pub session: Session,
}

/// The CSRF token of the session with this id.
fn csrf_token(session_id: &str) -> Result<Secret, ApiError> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(session_id.as_bytes()).map_err(ApiError::internal)?;
    mac.update(CSRF_LABEL);
    Ok(Secret::new(
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()),
    ))
}

/// Methods that change nothing, and so need no CSRF token.
fn is_safe_method(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub fn session_cookie_value(req: &HttpRequest) -> Option<String> {
    req.cookie(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

fn csrf_header(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The live session a cookie value names, compared again in constant time after the
/// lookup by hash, as tokens are.
pub async fn find_session(hub: &Hub, cookie_value: &str) -> Result<Option<Session>, ApiError> {
    if !cookie_value.starts_with(SESSION_ID_PREFIX) {
        return Ok(None);
    }
    let hash = crypto::hash_token(cookie_value);
    let stored = hub.store.dashboard_session(&hash, clock::now_ms()).await?;
    match stored.filter(|s| crypto::ct_eq(&s.id_hash, &hash)) {
        Some(stored) => Ok(Some(Session {
            stored,
            csrf_token: csrf_token(cookie_value)?,
        })),
        None => Ok(None),
    }
}

/// The CSRF check of a state-changing request made with the session cookie.
pub fn check_csrf(session: &Session, sent: Option<&str>) -> Result<(), ApiError> {
    match sent {
        Some(sent) if crypto::ct_eq(sent.as_bytes(), session.csrf_token.expose().as_bytes()) => {
            Ok(())
        }
        _ => Err(ApiError::CsrfRejected),
    }
}

/// The CSRF check for a handler that has the request and its session at hand.
pub fn check_request_csrf(req: &HttpRequest, session: &Session) -> Result<(), ApiError> {
    check_csrf(session, csrf_header(req).as_deref())
}

/// Signs an owner in with their owner token. Agent tokens do not sign in: the dashboard
/// is the owner's.
pub async fn sign_in(hub: &Hub, owner_token: &str) -> Result<SignedIn, ApiError> {
    let Caller::Owner(account_id) = authenticate(hub, owner_token).await? else {
        return Err(ApiError::Unauthorized);
    };
    let now = clock::now_ms();
    // Expired rows are useless; sweeping them here keeps the table small without a timer.
    hub.store.delete_expired_dashboard_sessions(now).await?;
    let session_id = format!(
        "{SESSION_ID_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(crypto::random_bytes::<32>()?)
    );
    let ttl_ms = i64::try_from(hub.config.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let expires_at = now.saturating_add(ttl_ms);
    let hash = crypto::hash_token(&session_id);
    hub.store
        .insert_dashboard_session(&hash, &account_id, now, expires_at)
        .await?;
    let stored = hub
        .store
        .dashboard_session(&hash, now)
        .await?
        .ok_or_else(|| ApiError::internal("a session just made was not found"))?;
    tracing::info!(account_id = %account_id, "dashboard sign-in");
    Ok(SignedIn {
        session: Session {
            stored,
            csrf_token: csrf_token(&session_id)?,
        },
        session_id: Secret::new(session_id),
    })
}

pub async fn sign_out(hub: &Hub, session: &Session) -> Result<(), ApiError> {
    hub.store
        .delete_dashboard_session(&session.stored.id_hash)
        .await?;
    tracing::info!(account_id = %session.stored.account_id, "dashboard sign-out");
    Ok(())
}

/// The session cookie: script cannot read it, no other site's request carries it, it
/// expires with the session, and it is `Secure` whenever the request came over HTTPS.
pub fn session_cookie(hub: &Hub, req: &HttpRequest, session_id: &Secret) -> Cookie<'static> {
    let max_age = i64::try_from(hub.config.session_ttl.as_secs()).unwrap_or(i64::MAX);
    Cookie::build(SESSION_COOKIE, session_id.expose().to_owned())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(served_over_https(hub, req))
        .max_age(CookieDuration::seconds(max_age))
        .finish()
}

/// A cookie that makes the browser forget the session.
pub fn cleared_session_cookie(hub: &Hub, req: &HttpRequest) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(served_over_https(hub, req))
        .max_age(CookieDuration::ZERO)
        .finish()
}

/// The header a TLS-terminating proxy sets to the scheme its client used.
const FORWARDED_PROTO: &str = "x-forwarded-proto";

/// Whether the browser reached the hub over HTTPS: the public URL says so, or a proxy in
/// front (deploy/nginx.conf) says the request came to it over HTTPS.
///
/// The header is believed from anyone, proxy or not, because all it can do is add
/// `Secure`: a cookie only ever gets stricter for it. A client that sends it over plain
/// HTTP gets a cookie its own browser will not send back, and harms no one else.
fn served_over_https(hub: &Hub, req: &HttpRequest) -> bool {
    let public_url_is_https = hub
        .public_url
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
    public_url_is_https || forwarded_over_https(req)
}

/// `X-Forwarded-Proto: https`; with proxies in a chain each may have added its own value
/// (`https, http`), and any `https` among them counts, for the reason above.
fn forwarded_over_https(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(FORWARDED_PROTO)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|proto| proto.trim().eq_ignore_ascii_case("https"))
}
