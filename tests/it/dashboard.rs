//! The dashboard over plain HTTP: its page and headers, the sign-in session and its
//! cookie, CSRF protection, sign-out, expiry, the live activity stream, and the agent
//! listing's backlog.

use std::time::Duration;

use awc::http::header;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::harness::{
    create_owner, senders::github_push, spawn_app, spawn_app_with, Resp, TestApp,
};

/// A signed-in browser, as far as the server can tell: the cookie and the CSRF token.
struct Session {
    cookie: String,
    csrf: String,
    set_cookie: String,
}

async fn sign_in(app: &TestApp, token: &str) -> Session {
    let r = app
        .request(
            "POST",
            "/dashboard/session",
            None,
            Some(json!({ "token": token })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let set_cookie = r
        .headers
        .get(header::SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    let pair = set_cookie.split(';').next().unwrap().trim().to_owned();
    assert!(pair.starts_with("hookhub_session="), "{set_cookie}");
    Session {
        cookie: pair,
        csrf: r.json["csrfToken"].as_str().unwrap().to_owned(),
        set_cookie,
    }
}

/// A request carrying the session cookie, and the CSRF header when given.
async fn with_cookie(
    app: &TestApp,
    method: &str,
    path: &str,
    session: &Session,
    csrf: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app
        .client
        .request(method, app.url(path))
        .insert_header((header::COOKIE, session.cookie.clone()));
    if let Some(csrf) = csrf {
        req = req.insert_header(("X-CSRF-Token", csrf));
    }
    let mut resp = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    }
    .expect("request sent");
    let raw = resp.body().await.unwrap();
    Resp {
        status: resp.status().as_u16(),
        json: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        headers: resp.headers().clone(),
        raw,
    }
}

fn cookie_attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

#[actix_web::test]
async fn the_page_is_embedded_and_served_with_strict_headers() {
    let app = spawn_app().await;
    for (path, content_type) in [
        ("/", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/app.css", "text/css"),
        ("/dashboard/icon.svg", "image/svg+xml"),
    ] {
        let r = app.request("GET", path, None, None).await;
        assert_eq!(r.status, 200, "{path}");
        let h = |name: &str| r.headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert!(h("content-type").starts_with(content_type), "{path}");
        assert!(h("content-security-policy").contains("default-src 'self'"));
        assert!(h("content-security-policy").contains("script-src 'self'"));
        assert_eq!(h("x-content-type-options"), "nosniff");
        assert_eq!(h("referrer-policy"), "no-referrer");
        assert!(!r.raw.is_empty());
    }
    // No inline script: every script element loads our file.
    let page = app.request("GET", "/", None, None).await;
    let html = String::from_utf8(page.raw.to_vec()).unwrap();
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains(r#"<script src="/dashboard/app.js" defer></script>"#));
}

#[actix_web::test]
async fn the_page_tells_its_script_when_no_session_cookie_came() {
    let app = spawn_app().await;
    let page = app.request("GET", "/", None, None).await;
    let html = String::from_utf8(page.raw.to_vec()).unwrap();
    assert_eq!(html.matches("<body data-signed-out>").count(), 1, "{html}");
    assert_eq!(page.headers.get(header::VARY).unwrap(), "Cookie");

    // With a cookie the page cannot tell (the session may have ended): its script asks.
    let session = sign_in(&app, &app.owner_token).await;
    let page = with_cookie(&app, "GET", "/", &session, None, None).await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8(page.raw.to_vec()).unwrap();
    assert!(
        html.contains("<body>") && !html.contains("data-signed-out"),
        "{html}"
    );
}

#[actix_web::test]
async fn signing_in_sets_a_strict_http_only_cookie_that_expires() {
    let app = spawn_app().await;
    let r = app
        .request(
            "POST",
            "/dashboard/session",
            None,
            Some(json!({ "token": app.owner_token })),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["accountId"], app.owner_account.as_str());
    assert_eq!(r.json["name"], "owner");
    assert!(r.json["csrfToken"].as_str().unwrap().len() >= 32);
    assert!(r.json["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
    // The body never carries the session id; only the cookie does.
    let set_cookie = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    let session_id = set_cookie
        .split(';')
        .next()
        .unwrap()
        .split('=')
        .nth(1)
        .unwrap();
    assert!(session_id.starts_with("hh_session_"));
    assert!(!String::from_utf8_lossy(&r.raw).contains(session_id));

    let attrs = cookie_attributes(set_cookie);
    assert!(attrs.contains(&"httponly".to_owned()), "{set_cookie}");
    assert!(
        attrs.contains(&"samesite=strict".to_owned()),
        "{set_cookie}"
    );
    assert!(attrs.contains(&"path=/".to_owned()), "{set_cookie}");
    assert!(attrs.contains(&"max-age=43200".to_owned()), "{set_cookie}");
    // Served over plain HTTP here, so not `Secure` (the browser would drop it).
    assert!(!attrs.contains(&"secure".to_owned()), "{set_cookie}");

    // Who am I, from the cookie.
    let session = sign_in(&app, &app.owner_token).await;
    let me = with_cookie(&app, "GET", "/dashboard/session", &session, None, None).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json["accountId"], app.owner_account.as_str());
    assert_eq!(me.json["csrfToken"], session.csrf.as_str());
}

#[actix_web::test]
async fn only_an_owner_token_signs_in() {
    let app = spawn_app().await;
    let (_, agent_token) = app.create_agent("bot").await;
    for token in [agent_token.as_str(), "hh_owner_nope", "", "   "] {
        let r = app
            .request(
                "POST",
                "/dashboard/session",
                None,
                Some(json!({ "token": token })),
            )
            .await;
        let expected = if token.trim().is_empty() { 400 } else { 401 };
        assert_eq!(r.status, expected, "{token:?}: {:?}", r.json);
        assert!(r.headers.get(header::SET_COOKIE).is_none());
    }
    let r = app
        .request("POST", "/dashboard/session", None, Some(json!({})))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json["error"]["field"], "token");
    // Without a cookie there is no one to be.
    let r = app.request("GET", "/dashboard/session", None, None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json["error"]["code"], "unauthorized");
}

#[actix_web::test]
async fn the_cookie_is_secure_when_the_hub_is_served_over_https() {
    let app = spawn_app_with(|c| c.public_url = Some("https://hooks.example.com".into())).await;
    let session = sign_in(&app, &app.owner_token).await;
    let attrs = cookie_attributes(&session.set_cookie);
    assert!(
        attrs.contains(&"secure".to_owned()),
        "{}",
        session.set_cookie
    );
    assert!(attrs.contains(&"httponly".to_owned()));
}

/// The `Set-Cookie` of a dashboard session request sent with `X-Forwarded-Proto` set to
/// `proto`, as a TLS-terminating proxy in front of the hub sends it.
async fn set_cookie_forwarded(
    app: &TestApp,
    method: &str,
    proto: &str,
    cookie: Option<&str>,
    csrf: Option<&str>,
) -> String {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app
        .client
        .request(method, app.url("/dashboard/session"))
        .insert_header(("X-Forwarded-Proto", proto));
    if let Some(cookie) = cookie {
        req = req.insert_header((header::COOKIE, cookie));
    }
    if let Some(csrf) = csrf {
        req = req.insert_header(("X-CSRF-Token", csrf));
    }
    let resp = match cookie {
        Some(_) => req.send().await,
        None => req.send_json(&json!({ "token": app.owner_token })).await,
    }
    .expect("request sent");
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.headers()
        .get(header::SET_COOKIE)
        .expect("a Set-Cookie")
        .to_str()
        .unwrap()
        .to_owned()
}

#[actix_web::test]
async fn the_cookie_is_secure_when_a_proxy_says_the_request_came_over_https() {
    // The public URL is plain http: only the proxy's header can make the cookie `Secure`.
    let app = spawn_app().await;
    let secure = |set_cookie: &str| cookie_attributes(set_cookie).contains(&"secure".to_owned());

    for proto in ["https", "HTTPS", "https, http", "http, https"] {
        let set_cookie = set_cookie_forwarded(&app, "POST", proto, None, None).await;
        assert!(secure(&set_cookie), "{proto}: {set_cookie}");
    }
    for proto in ["http", "", "httpsx"] {
        let set_cookie = set_cookie_forwarded(&app, "POST", proto, None, None).await;
        assert!(!secure(&set_cookie), "{proto}: {set_cookie}");
    }

    // Signing out through the proxy clears the cookie with one as strict as it was set.
    let session = sign_in(&app, &app.owner_token).await;
    let cleared = set_cookie_forwarded(
        &app,
        "DELETE",
        "https",
        Some(&session.cookie),
        Some(&session.csrf),
    )
    .await;
    assert!(cleared.starts_with("hookhub_session=;"), "{cleared}");
    assert!(secure(&cleared), "{cleared}");
    let me = with_cookie(&app, "GET", "/dashboard/session", &session, None, None).await;
    assert_eq!(me.status, 401, "the session ended");
}

#[actix_web::test]
async fn a_cookie_session_acts_as_the_owner_and_changes_need_the_csrf_token() {
    let app = spawn_app().await;
    let session = sign_in(&app, &app.owner_token).await;

    // Reading needs only the cookie.
    let r = with_cookie(&app, "GET", "/v1/agents", &session, None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["agents"], json!([]));

    // Changing something without the token, or with a wrong one, is refused, and nothing
    // changes.
    for csrf in [None, Some("wrong"), Some("")] {
        let r = with_cookie(
            &app,
            "POST",
            "/v1/agents",
            &session,
            csrf,
            Some(json!({ "name": "forged" })),
        )
        .await;
        assert_eq!(r.status, 401, "{csrf:?}");
        assert_eq!(r.json["error"]["code"], "unauthorized");
        assert!(r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-CSRF-Token"));
    }
    let r = with_cookie(&app, "GET", "/v1/agents", &session, None, None).await;
    assert_eq!(r.json["agents"], json!([]));

    // With it, the request is the owner's, made on the dashboard path.
    let r = with_cookie(
        &app,
        "POST",
        "/v1/agents",
        &session,
        Some(&session.csrf),
        Some(json!({ "name": "bot" })),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    let agent = r.json["agentId"].as_str().unwrap().to_owned();
    let r = with_cookie(
        &app,
        "POST",
        &format!("/v1/agents/{agent}/webhooks"),
        &session,
        Some(&session.csrf),
        Some(json!({ "name": "gh", "provider": "github" })),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    let webhook = r.json["webhookId"].as_str().unwrap().to_owned();
    let r = with_cookie(
        &app,
        "GET",
        &format!("/v1/agents/{agent}/webhooks/{webhook}"),
        &session,
        None,
        None,
    )
    .await;
    assert_eq!(r.json["createdBy"], "user");

    // DELETE and PUT are changes too.
    let path = format!("/v1/agents/{agent}/webhooks/{webhook}");
    let r = with_cookie(&app, "DELETE", &path, &session, None, None).await;
    assert_eq!(r.status, 401);
    let r = with_cookie(&app, "GET", &path, &session, None, None).await;
    assert_eq!(r.json["active"], true);

    // Bearer callers need no CSRF token, and a bearer token wins over a cookie.
    let r = app
        .post("/v1/agents", &app.owner_token, json!({ "name": "api" }))
        .await;
    assert_eq!(r.status, 201);
    let resp = app
        .client
        .get(app.url("/v1/agents"))
        .insert_header((header::COOKIE, session.cookie.clone()))
        .bearer_auth("hh_owner_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[actix_web::test]
async fn signing_out_ends_the_session_only_with_its_csrf_token() {
    let app = spawn_app().await;
    let session = sign_in(&app, &app.owner_token).await;
    let other = sign_in(&app, &app.owner_token).await;

    let r = with_cookie(&app, "DELETE", "/dashboard/session", &session, None, None).await;
    assert_eq!(r.status, 401);
    let r = with_cookie(&app, "GET", "/dashboard/session", &session, None, None).await;
    assert_eq!(r.status, 200, "a forged sign-out ends nothing");

    let r = with_cookie(
        &app,
        "DELETE",
        "/dashboard/session",
        &session,
        Some(&session.csrf),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let cleared = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(cleared.starts_with("hookhub_session=;"), "{cleared}");
    assert!(cookie_attributes(cleared).contains(&"max-age=0".to_owned()));

    // The old cookie is dead everywhere, even if a browser kept it.
    let r = with_cookie(&app, "GET", "/dashboard/session", &session, None, None).await;
    assert_eq!(r.status, 401);
    let r = with_cookie(&app, "GET", "/v1/agents", &session, None, None).await;
    assert_eq!(r.status, 401);
    // Another sign-in of the same owner is its own session.
    let r = with_cookie(&app, "GET", "/v1/agents", &other, None, None).await;
    assert_eq!(r.status, 200);
}

#[actix_web::test]
async fn sessions_expire() {
    let app = spawn_app_with(|c| c.session_ttl = Duration::from_secs(2)).await;
    let session = sign_in(&app, &app.owner_token).await;
    assert!(cookie_attributes(&session.set_cookie).contains(&"max-age=2".to_owned()));
    let r = with_cookie(&app, "GET", "/v1/agents", &session, None, None).await;
    assert_eq!(r.status, 200);

    actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
    let r = with_cookie(&app, "GET", "/dashboard/session", &session, None, None).await;
    assert_eq!(r.status, 401);
    let r = with_cookie(&app, "GET", "/v1/agents", &session, None, None).await;
    assert_eq!(r.status, 401);
    // Signing in again works, and sweeps the expired row.
    let again = sign_in(&app, &app.owner_token).await;
    let r = with_cookie(&app, "GET", "/v1/agents", &again, None, None).await;
    assert_eq!(r.status, 200);
}

#[actix_web::test]
async fn the_agent_listing_shows_each_backlog() {
    let app = spawn_app().await;
    let (busy, _) = app.create_agent("busy").await;
    let (idle, _) = app.create_agent("idle").await;
    let wh = app
        .create_webhook(&app.owner_token, &busy, "gh", "github")
        .await;
    let (id, secret) = (
        wh["webhookId"].as_str().unwrap(),
        wh["signingSecret"].as_str().unwrap(),
    );
    for n in 0..3 {
        let r = github_push(&app, id, secret, &format!(r#"{{"n":{n}}}"#)).await;
        assert_eq!(r.status, 202, "{:?}", r.json);
    }
    let r = app.get("/v1/agents", &app.owner_token).await;
    let depth = |agent: &str| {
        r.json["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["agentId"] == agent)
            .unwrap()["backlogDepth"]
            .clone()
    };
    assert_eq!(depth(&busy), 3);
    assert_eq!(depth(&idle), 0);
}

/// Reads SSE events from a response until one satisfies `want`; waits up to 10 s for each
/// chunk. (The nginx tests read the stream through nginx with it too.)
pub(crate) async fn next_event_where<S>(
    resp: &mut awc::ClientResponse<S>,
    buf: &mut String,
    want: impl Fn(&str, &Value) -> bool,
) -> (String, Value)
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut name = "message".to_owned();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if data.is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(&data).unwrap();
            if want(&name, &value) {
                return (name, value);
            }
        }
        let chunk = actix_web::rt::time::timeout(Duration::from_secs(10), resp.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream is open")
            .expect("a chunk");
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[actix_web::test]
async fn the_activity_stream_sends_the_page_then_its_changes() {
    let app = spawn_app().await;
    let (agent, _) = app.create_agent("bot").await;
    let wh = app
        .create_webhook(&app.owner_token, &agent, "gh", "github")
        .await;
    let (id, secret) = (
        wh["webhookId"].as_str().unwrap(),
        wh["signingSecret"].as_str().unwrap(),
    );
    let path = format!("/v1/agents/{agent}/webhooks/{id}/deliveries/stream");
    let mut resp = app
        .client
        .get(app.url(&path))
        .bearer_auth(&app.owner_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut buf = String::new();
    let (name, first) = next_event_where(&mut resp, &mut buf, |_, _| true).await;
    assert_eq!(name, "deliveries");
    assert_eq!(first["deliveries"], json!([]));

    let r = github_push(&app, id, secret, r#"{"hello":"stream"}"#).await;
    let delivery = r.json["deliveryId"].as_str().unwrap().to_owned();
    let (name, page) = next_event_where(&mut resp, &mut buf, |_, v| {
        v["deliveries"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    assert_eq!(name, "deliveries");
    assert_eq!(page["deliveries"][0]["deliveryId"], delivery.as_str());
    assert_eq!(page["deliveries"][0]["status"], "queued");
}

#[actix_web::test]
async fn the_activity_stream_follows_the_list_rules() {
    let app = spawn_app().await;
    let (agent, agent_token) = app.create_agent("bot").await;
    let wh = app
        .create_webhook(&app.owner_token, &agent, "gh", "generic")
        .await;
    let id = wh["webhookId"].as_str().unwrap();
    let path = format!("/v1/agents/{agent}/webhooks/{id}/deliveries/stream");

    let r = app.request("GET", &path, None, None).await;
    assert_eq!(r.status, 401);
    let r = app
        .get(&format!("{path}?status=bogus"), &app.owner_token)
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json["error"]["field"], "status");

    // Another owner gets the same 404 as for nothing at all.
    let second = create_owner(&app, "second").await;
    let theirs = app.get(&path, &second).await;
    let nothing = app
        .get(
            &format!(
                "/v1/agents/{agent}/webhooks/whk_{}/deliveries/stream",
                ulid::Ulid::new()
            ),
            &app.owner_token,
        )
        .await;
    assert_eq!(theirs.status, 404);
    assert_eq!(theirs.raw, nothing.raw);

    // The agent itself may follow its own webhook (`me`).
    let mut resp = app
        .client
        .get(app.url(&format!("/v1/agents/me/webhooks/{id}/deliveries/stream")))
        .bearer_auth(&agent_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut buf = String::new();
    let (name, _) = next_event_where(&mut resp, &mut buf, |_, _| true).await;
    assert_eq!(name, "deliveries");
}

#[actix_web::test]
async fn open_activity_streams_end_when_the_hub_shuts_down() {
    let mut app = spawn_app().await;
    let (agent, _) = app.create_agent("bot").await;
    let wh = app
        .create_webhook(&app.owner_token, &agent, "gh", "generic")
        .await;
    let id = wh["webhookId"].as_str().unwrap();
    let mut resp = app
        .client
        .get(app.url(&format!(
            "/v1/agents/{agent}/webhooks/{id}/deliveries/stream"
        )))
        .bearer_auth(&app.owner_token)
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    next_event_where(&mut resp, &mut buf, |_, _| true).await;

    // The stream ends on its own when shutdown begins, well before the server's 10 s
    // drain would cut it, so an open dashboard does not hold up a restart.
    let ended = async {
        loop {
            match resp.next().await {
                Some(Ok(_)) => continue,
                _ => return,
            }
        }
    };
    let (ended, ()) = tokio::join!(
        actix_web::rt::time::timeout(Duration::from_secs(5), ended),
        app.stop()
    );
    assert!(ended.is_ok(), "the stream was still open 5 s into shutdown");
}

/// The session id is stored only hashed, and the CSRF token is not stored at all: a copy
/// of the database hands out neither, although it holds every live session.
#[actix_web::test]
async fn the_database_holds_no_csrf_token() {
    use sqlx::{sqlite::SqliteConnectOptions, ConnectOptions, Connection};

    let mut app = spawn_app().await;
    let sessions = [
        sign_in(&app, &app.owner_token).await,
        sign_in(&app, &app.owner_token).await,
    ];
    assert_ne!(sessions[0].csrf, sessions[1].csrf);
    for (n, session) in sessions.iter().enumerate() {
        let r = with_cookie(
            &app,
            "POST",
            "/v1/agents",
            session,
            Some(&session.csrf),
            Some(json!({ "name": format!("bot{n}") })),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.json);
    }
    app.stop().await;

    let mut conn = SqliteConnectOptions::new()
        .filename(app.data_dir.path().join("hookhub.db"))
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM dashboard_sessions")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored, 2, "both sessions are in the database");
    conn.close().await.unwrap();

    let bytes = crate::harness::process::database_bytes(app.data_dir.path());
    assert!(bytes.len() > 4096, "the database was read");
    let haystack = String::from_utf8_lossy(&bytes);
    for session in &sessions {
        let session_id = session.cookie.split_once('=').unwrap().1;
        for (what, secret) in [
            ("CSRF token", session.csrf.as_str()),
            ("session id", session_id),
        ] {
            let material = &secret[secret.len() - 20..];
            assert!(!haystack.contains(material), "a {what} is in the database");
        }
    }
}

#[actix_web::test]
async fn an_activity_stream_ends_when_the_token_it_began_with_is_rotated() {
    let app = spawn_app().await;
    let (agent, agent_token) = app.create_agent("bot").await;
    let id = app.create_webhook(&agent_token, "me", "w", "generic").await["webhookId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut resp = app
        .client
        .get(app.url(&format!("/v1/agents/me/webhooks/{id}/deliveries/stream")))
        .bearer_auth(&agent_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut buf = String::new();
    let (name, _) = next_event_where(&mut resp, &mut buf, |_, _| true).await;
    assert_eq!(name, "deliveries");

    let rotated = app
        .post(
            &format!("/v1/agents/{agent}/token/rotate"),
            &app.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200);
    let posted = app.ingest_signed(&id, r#"{"type":"after"}"#, &[]).await;
    assert_eq!(posted.status, 202);
    let (name, data) = next_event_where(&mut resp, &mut buf, |name, v| {
        name == "failed" || v["deliveries"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    assert_eq!(name, "failed", "the old token still streamed: {data}");
    assert_eq!(data["error"]["code"], "unauthorized");
}
