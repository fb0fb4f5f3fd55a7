//! `GET /v1/openapi.json`, held to the routes the app really has.
//!
//! Which routes the app has is not written down a second time here. The document is
//! collected from the registration itself (`hookhub::http::Routes`): a route registered
//! as documented brings its operation from its own `#[utoipa::path]`, and one without it
//! does not compile there. What is left is checked on the live hub, in both directions:
//!
//! - document → app: every documented (method, path) is requested with the ids of a real
//!   agent, webhook and delivery, once without a token and once with each token it
//!   documents, and must not reach the catch-all (404 `not_found`). A real route never
//!   answers that here: without a token an authenticated one answers 401 first, and with
//!   one it finds the ids it is given. Each answer must be one the operation documents,
//!   and a route answers "401, `WWW-Authenticate: Bearer`" without a token exactly when
//!   it documents a bearer scheme. This holds the operations written by hand
//!   (`POST /v1/mcp`, mounted by rmcp) and every path and method typed in an attribute
//!   to the router.
//! - app → document: the routes registered without documentation are the ones
//!   `Routes::left_out` recorded, and they must be exactly the dashboard's own; a route
//!   left out by accident fails here until it is documented (or listed below, on purpose).
//!
//! What this cannot see: a route mounted in `startup.rs` outside `http::configure` (as
//! MCP's is) and never documented; and the methods other than POST that rmcp's scope at
//! `/v1/mcp` passes to the transport.

use std::collections::{BTreeSet, HashSet};

use serde_json::Value;

use awc::http::header::HeaderMap;

use crate::harness::{spawn_app, TestApp};

/// The operations of a document: (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    assert!(ops.len() > 10, "too few operations: {ops:?}");
    ops
}

fn documented_statuses(op: &Value) -> Vec<u16> {
    op["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(|s| s.parse().unwrap())
        .collect()
}

/// The `{name}`s of a path.
fn path_params(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_owned)
        .collect()
}

fn is_catch_all(status: u16, json: &Value) -> bool {
    status == 404 && json["error"]["code"] == "not_found"
}

#[actix_web::test]
async fn the_document_is_openapi_3_1_served_without_a_token() {
    let app = spawn_app().await;
    let r = app.request("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(r.status, 200, "{:?}", r.raw);
    assert_eq!(
        r.headers.get("content-type").unwrap().to_str().unwrap(),
        "application/json"
    );
    let version = r.json["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");
    // What is served is what the registration collected.
    let collected = serde_json::to_value(hookhub::http::openapi::collect().document).unwrap();
    assert_eq!(r.json, collected);
}

/// A request's status, headers, and body if it is an error (a success may be a stream
/// that does not end).
async fn probe(
    app: &TestApp,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, HeaderMap, Value) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    // What MCP's transport asks of its clients; nothing else minds it.
    let mut req = app
        .client
        .request(method, app.url(url))
        .insert_header(("accept", "application/json, text/event-stream"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = match body {
        Some(body) => req.send_json(body).await,
        None => req.send().await,
    };
    let mut resp = resp.expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    // A stream's body never ends: only JSON is read.
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let json = if status >= 400 || is_json {
        serde_json::from_slice(&resp.body().await.unwrap()).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    (status, headers, json)
}

/// A request with a token, made once every request without one has been.
struct Probe {
    method: String,
    url: String,
    path: String,
    scheme: String,
    body: Option<Value>,
    statuses: Vec<u16>,
}

#[actix_web::test]
async fn every_documented_operation_is_a_route_of_the_live_app() {
    let app = spawn_app().await;
    let (agent, agent_token, webhook) = app.agent_with_webhook().await;
    let queued = app.ingest_signed(&webhook, r#"{"n":1}"#, &[]).await;
    assert_eq!(queued.status, 202, "{:?}", queued.json);
    let delivery = queued.json["deliveryId"].as_str().unwrap().to_owned();
    let doc = app
        .request("GET", "/v1/openapi.json", None, None)
        .await
        .json;

    // What the catch-all looks like, so that it is recognised below: for a path no route
    // has, and for a documented path with a method it does not have.
    for (method, path) in [("GET", "/v1/no-such-route"), ("PUT", "/v1/agents")] {
        let (status, _, json) = probe(&app, method, path, Some(&app.owner_token), None).await;
        assert!(
            is_catch_all(status, &json),
            "{method} {path}: {status} {json}"
        );
    }

    let mut ops = operations(&doc);
    // Deactivating the webhook would make ingest's answer a 404 of its own: last.
    ops.sort_by_key(|(method, _, _)| method == "DELETE");
    let mut with_tokens = Vec::new();
    for (method, path, op) in &ops {
        let mut url = path.clone();
        for name in path_params(path) {
            let value = match name.as_str() {
                "agent" => &agent,
                "webhook" | "webhookId" => &webhook,
                "delivery" => &delivery,
                other => panic!("{method} {path}: no test value for `{{{other}}}`"),
            };
            url = url.replace(&format!("{{{name}}}"), value);
        }
        let statuses = documented_statuses(op);

        // Without a token, a route that wants one says so with 401 and
        // `WWW-Authenticate` before it looks at anything else; ingest's 401 is a
        // signature's, and has none.
        let (status, headers, json) = probe(&app, method, &url, None, None).await;
        assert!(
            !is_catch_all(status, &json),
            "{method} {path} is documented, but the app has no such route: {status} {json}"
        );
        assert!(
            statuses.contains(&status),
            "{method} {path} answered {status} {json} without a token, which it does not document ({statuses:?})"
        );
        let asks_for_token = status == 401 && headers.contains_key("www-authenticate");
        assert_eq!(
            asks_for_token,
            op.get("security").is_some(),
            "{method} {path}: answered {status} {json} without a token, and documents security {:?}",
            op.get("security")
        );

        // With each token it documents, real ids, and the example body if it documents
        // one, a route gets past authentication and finds what it names, so a 404 is
        // the catch-all's. This is what sees through a middleware that answers for a
        // whole prefix before routing, as MCP's does (401, then 400 for a body that is
        // not a JSON-RPC message).
        let example = op["requestBody"]["content"]["application/json"]
            .get("example")
            .cloned();
        let schemes = op["security"].as_array().cloned().unwrap_or_default();
        for scheme in schemes.iter().flat_map(|s| s.as_object().unwrap().keys()) {
            with_tokens.push(Probe {
                method: method.clone(),
                url: url.clone(),
                path: path.clone(),
                scheme: scheme.clone(),
                body: example.clone(),
                statuses: statuses.clone(),
            });
        }
    }
    // What revokes the tokens the others use goes last: rotations (whose new tokens
    // the probes go on with), then deleting the webhook, then deleting the agent.
    with_tokens.sort_by_key(|p| match (p.method.as_str(), p.path.as_str()) {
        (_, path) if path.ends_with("/token/rotate") => 1,
        ("DELETE", "/v1/agents/{agent}") => 3,
        ("DELETE", _) => 2,
        _ => 0,
    });
    let (mut owner_token, mut agent_token) = (app.owner_token.clone(), agent_token);
    for Probe {
        method,
        url,
        path,
        scheme,
        body,
        statuses,
    } in with_tokens
    {
        let token = match scheme.as_str() {
            "ownerToken" => owner_token.clone(),
            "agentToken" => agent_token.clone(),
            other => panic!("{method} {path}: unknown scheme {other}"),
        };
        let (status, _, json) = probe(&app, &method, &url, Some(&token), body.as_ref()).await;
        match json["token"].as_str() {
            Some(new) if json.get("accountId").is_some() => owner_token = new.to_owned(),
            Some(new) if json.get("agentId").is_some() => agent_token = new.to_owned(),
            _ => {}
        }
        assert!(
            status != 404 && status != 401,
            "{method} {path} with an {scheme}: {status} {json}"
        );
        assert!(
            statuses.contains(&status),
            "{method} {path} answered {status} {json} with an {scheme}, which it does not document ({statuses:?})"
        );
    }
}

#[actix_web::test]
async fn the_routes_left_out_of_the_document_are_the_dashboards_own() {
    let collected = hookhub::http::openapi::collect();
    let left_out: Vec<(String, &str)> = collected
        .left_out
        .iter()
        .map(|r| (r.method.to_string(), r.path))
        .collect();
    // The dashboard's page, files and cookie session: its script's, not the API's.
    let meant: Vec<(String, &str)> = [
        ("GET", "/"),
        ("GET", "/dashboard/app.js"),
        ("GET", "/dashboard/app.css"),
        ("GET", "/dashboard/icon.svg"),
        ("POST", "/dashboard/session"),
        ("GET", "/dashboard/session"),
        ("DELETE", "/dashboard/session"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p))
    .collect();
    assert_eq!(
        left_out, meant,
        "a route was registered without documentation: document it with #[utoipa::path], \
         or, if it is not part of the API, add it here"
    );

    let doc = serde_json::to_value(collected.document).unwrap();
    let documented: HashSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let app = spawn_app().await;
    for (method, path) in &left_out {
        assert!(
            !documented.contains(&(method.clone(), path.to_string())),
            "{method} {path} is both documented and left out"
        );
        // Left out of the document, but a route all the same.
        let r = app.request(method, path, None, None).await;
        assert!(!is_catch_all(r.status, &r.json), "{method} {path}: {r:?}");
    }
}

#[test]
fn every_operation_documents_its_errors_its_token_and_its_parameters() {
    let doc = serde_json::to_value(hookhub::http::openapi::collect().document).unwrap();
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for name in ["ownerToken", "agentToken"] {
        assert_eq!(schemes[name]["type"], "http", "{name}");
        assert_eq!(schemes[name]["scheme"], "bearer", "{name}");
    }
    let mut ids = HashSet::new();
    for (method, path, op) in operations(&doc) {
        let what = format!("{method} {path}");
        let id = op["operationId"].as_str().unwrap().to_owned();
        assert!(
            ids.insert(id.clone()),
            "{what}: operationId {id} is not unique"
        );
        assert!(op["summary"].is_string(), "{what} has no summary");

        let statuses = documented_statuses(&op);
        assert!(
            statuses.iter().any(|s| *s >= 400),
            "{what} documents no error: {statuses:?}"
        );
        assert!(
            statuses.iter().any(|s| (100..400).contains(s)),
            "{what} documents no success: {statuses:?}"
        );
        for (status, response) in op["responses"].as_object().unwrap() {
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{what} {status} has no description"
            );
        }

        if let Some(security) = op.get("security") {
            let security = security.as_array().unwrap();
            assert!(!security.is_empty(), "{what}");
            for requirement in security {
                for scheme in requirement.as_object().unwrap().keys() {
                    assert!(
                        schemes.contains_key(scheme),
                        "{what}: unknown scheme {scheme}"
                    );
                }
            }
            assert!(
                statuses.contains(&401),
                "{what} takes a token and documents no 401"
            );
        }

        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(declared, path_params(&path), "{what}: path parameters");
    }

    for (method, path) in [("post", "/v1/mcp"), ("get", "/v1/agent/connect")] {
        let op = &doc["paths"][path][method];
        assert_eq!(
            op["security"],
            serde_json::json!([{"agentToken": []}]),
            "{path}"
        );
        assert!(
            op["description"]
                .as_str()
                .unwrap()
                .contains("docs/agent-protocol.md"),
            "{path}"
        );
    }
    assert!(doc["paths"]["/v1/mcp"]["post"]["requestBody"].is_object());
    assert!(doc["paths"]["/v1/hooks/{webhookId}"]["post"].is_object());
}
