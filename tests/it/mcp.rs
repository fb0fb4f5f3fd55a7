//! The hub as an MCP server, driven by the official MCP Python SDK (`harness::mcp`) over
//! real Streamable HTTP and over `hookhub mcp` on stdio.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{
    mcp::McpClient,
    process::{free_port, HubProcess},
    spawn_app, spawn_app_with, wait_status, HubClient, Resp, TestApp,
};

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

/// Posts `n` signed events to a generic webhook made through `hub`: their delivery ids, in
/// the order they were accepted.
async fn post_events(hub: &HubClient, webhook_id: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"n": i}).to_string();
        let r = hub.ingest_signed(webhook_id, body, &[]).await;
        assert_eq!(r.status, 202, "{:?}", r.json);
        ids.push(s(&r.json["deliveryId"]));
    }
    ids
}

fn event_ids(result: &Value) -> Vec<String> {
    result["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {result}"))
        .iter()
        .map(|e| s(&e["deliveryId"]))
        .collect()
}

/// Reads every event with `next_events`, acking each batch with the next call, until a
/// call returns none: the ids in the order they came.
async fn drain(mcp: &mut McpClient) -> Vec<String> {
    let mut seen = Vec::new();
    let mut ack: Vec<String> = Vec::new();
    loop {
        let r = mcp
            .ok(
                "next_events",
                json!({"max": 100, "waitSeconds": 0, "ack": ack}),
            )
            .await;
        if !ack.is_empty() {
            assert_eq!(r["acked"], ack.len(), "{r}");
        }
        ack = event_ids(&r);
        if ack.is_empty() {
            return seen;
        }
        seen.extend(ack.iter().cloned());
    }
}

async fn generic_webhook(app: &TestApp, token: &str) -> String {
    let wh = app.create_webhook(token, "me", "hook", "generic").await;
    s(&wh["webhookId"])
}

#[actix_web::test]
async fn an_agent_manages_its_own_webhooks_over_mcp_and_the_owner_sees_what_it_did() {
    let app = spawn_app().await;
    let (agent, token) = app.create_agent("llm").await;
    let mut mcp = McpClient::http(&app.base, &token).await;

    let tools = mcp.tools().await;
    let names: Vec<String> = tools.iter().map(|t| s(&t["name"])).collect();
    assert_eq!(
        names,
        [
            "create_webhook",
            "list_webhooks",
            "get_webhook",
            "rotate_webhook_secret",
            "set_provider_secret",
            "delete_webhook",
            "list_deliveries",
            "redeliver",
            "redeliver_deliveries",
            "discard_delivery",
            "next_events",
            "ack_events"
        ]
    );
    for t in &tools {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert!(s(&t["description"]).len() > 30, "{t}");
    }
    let hints = |name: &str| {
        let t = tools.iter().find(|t| t["name"] == name).unwrap();
        let a = &t["annotations"];
        (
            a["readOnlyHint"].as_bool().unwrap(),
            a["destructiveHint"].as_bool().unwrap(),
            a["idempotentHint"].as_bool().unwrap(),
        )
    };
    assert_eq!(hints("list_webhooks"), (true, false, true));
    assert_eq!(hints("create_webhook"), (false, false, false));
    assert_eq!(hints("delete_webhook"), (false, true, true));
    assert_eq!(hints("rotate_webhook_secret"), (false, true, false));
    let next = tools.iter().find(|t| t["name"] == "next_events").unwrap();
    assert!(s(&next["description"]).contains("untrusted"), "{next}");

    let created = mcp
        .ok(
            "create_webhook",
            json!({"name": "pushes", "provider": "github"}),
        )
        .await;
    let id = s(&created["webhookId"]);
    assert_eq!(created["url"], format!("{}/v1/hooks/{id}", app.base));
    let first_secret = s(&created["signingSecret"]);
    assert!(first_secret.starts_with("whsec_"));

    let rotated = mcp
        .ok("rotate_webhook_secret", json!({"webhookId": id}))
        .await;
    let second_secret = s(&rotated["signingSecret"]);
    assert!(second_secret.starts_with("whsec_"));
    assert_ne!(second_secret, first_secret);

    let listed = mcp.ok("list_webhooks", json!({})).await;
    let listed = listed["webhooks"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["webhookId"], id.as_str());
    assert!(
        listed[0].get("signingSecret").is_none(),
        "a secret is shown once"
    );

    // The owner, over HTTP, sees the agent's webhook as the agent's.
    let owner_view = app
        .get(
            &format!("/v1/agents/{agent}/webhooks/{id}"),
            &app.owner_token,
        )
        .await;
    assert_eq!(owner_view.status, 200);
    assert_eq!(owner_view.json["createdBy"], "agent");
    assert_eq!(owner_view.json["name"], "pushes");
    assert_eq!(owner_view.json["active"], true);

    let deleted = mcp.ok("delete_webhook", json!({"webhookId": id})).await;
    assert_eq!(deleted["active"], false);
    let owner_view = app
        .get(
            &format!("/v1/agents/{agent}/webhooks/{id}"),
            &app.owner_token,
        )
        .await;
    assert_eq!(owner_view.json["active"], false);
    let r = app.ingest(&id, "{}", &[]).await;
    assert_eq!(r.status, 404, "a deleted webhook takes nothing");
    mcp.close().await;
}

#[actix_web::test]
async fn a_siblings_webhook_is_not_found_exactly_as_an_unknown_id_is() {
    let app = spawn_app().await;
    let (_, token_a) = app.create_agent("a").await;
    let (agent_b, token_b) = app.create_agent("b").await;
    let theirs = generic_webhook(&app, &token_b).await;
    let their_delivery = post_events(&app, &theirs, 1).await.remove(0);
    let mut mcp = McpClient::http(&app.base, &token_a).await;

    let unknown = "whk_01J9Z8Q0000000000000000000";
    for (tool, args, unknown_args) in [
        (
            "get_webhook",
            json!({"webhookId": theirs}),
            json!({"webhookId": unknown}),
        ),
        (
            "delete_webhook",
            json!({"webhookId": theirs}),
            json!({"webhookId": unknown}),
        ),
        (
            "rotate_webhook_secret",
            json!({"webhookId": theirs}),
            json!({"webhookId": unknown}),
        ),
        (
            "list_deliveries",
            json!({"webhookId": theirs}),
            json!({"webhookId": unknown}),
        ),
        (
            "redeliver",
            json!({"webhookId": theirs, "deliveryId": their_delivery}),
            json!({"webhookId": unknown, "deliveryId": their_delivery}),
        ),
    ] {
        let sibling = mcp.call(tool, args).await;
        let made_up = mcp.call(tool, unknown_args).await;
        assert_eq!(sibling["ok"]["isError"], true, "{sibling}");
        assert_eq!(
            sibling["ok"]["content"], made_up["ok"]["content"],
            "{tool}: byte for byte the same"
        );
        assert_eq!(
            sibling["ok"]["structuredContent"],
            json!({"error": {"code": "not_found", "message": "not found"}})
        );
    }
    // Acking B's delivery through A is not_found for that id, and acks nothing of B's.
    let acked = mcp
        .ok(
            "ack_events",
            json!({"deliveryIds": [their_delivery, "dlv_nonsense"]}),
        )
        .await;
    assert_eq!(acked["acked"], 0);
    assert_eq!(
        acked["errors"],
        json!([
            {"deliveryId": their_delivery, "error": {"code": "not_found", "message": "not found"}},
            {"deliveryId": "dlv_nonsense", "error": {"code": "not_found", "message": "not found"}},
        ])
    );
    let b_view = app.activity(&agent_b, &theirs).await;
    assert_eq!(b_view[0]["status"], "queued");
    // B gets it, A never did.
    let mut b = McpClient::http(&app.base, &token_b).await;
    let got = b.ok("next_events", json!({"waitSeconds": 0})).await;
    assert_eq!(event_ids(&got), [their_delivery]);
    let a_got = mcp.ok("next_events", json!({"waitSeconds": 0})).await;
    assert_eq!(event_ids(&a_got), Vec::<String>::new());
}

#[actix_web::test]
async fn five_hundred_queued_events_come_out_in_order_and_none_twice_once_acked() {
    let app = spawn_app().await;
    let (agent, token) = app.create_agent("llm").await;
    let wid = generic_webhook(&app, &token).await;
    let posted = post_events(&app, &wid, 500).await;

    let mut mcp = McpClient::http(&app.base, &token).await;
    let first = mcp
        .ok("next_events", json!({"max": 3, "waitSeconds": 0}))
        .await;
    // One event as the socket frame has it, and the warning about what it carries.
    let event = &first["events"][0];
    let mut fields: Vec<&str> = event
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "attempt",
            "body",
            "bodyEncoding",
            "deliveryId",
            "event",
            "headers",
            "provider",
            "receivedAt",
            "signature",
            "verified",
            "webhookId"
        ]
    );
    assert_eq!(event["attempt"], 1);
    assert_eq!(event["body"], r#"{"n":0}"#);
    assert_eq!(event["verified"], true);
    assert!(s(&first["untrusted"]).contains("untrusted data"));
    // The frame's signature verifies with the webhook's secret, as on the socket.
    let secret = app.secrets.lock().unwrap()[&wid].clone();
    let (msg_id, timestamp, signature) = {
        let sig = &event["signature"];
        (
            s(&sig["webhook-id"]),
            s(&sig["webhook-timestamp"]),
            s(&sig["webhook-signature"]),
        )
    };
    let mut headers = http::HeaderMap::new();
    headers.insert("webhook-id", msg_id.parse().unwrap());
    headers.insert("webhook-timestamp", timestamp.parse().unwrap());
    headers.insert("webhook-signature", signature.parse().unwrap());
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(event["body"].as_str().unwrap().as_bytes(), &headers)
        .expect("the event's signature verifies");

    // The three are handed out: the next read starts after them, and acks them first.
    let mut seen = event_ids(&first);
    let rest = mcp
        .ok(
            "next_events",
            json!({"max": 100, "waitSeconds": 0, "ack": seen}),
        )
        .await;
    assert_eq!(rest["acked"], 3);
    let mut ack = event_ids(&rest);
    seen.extend(ack.iter().cloned());
    loop {
        let r = mcp
            .ok(
                "next_events",
                json!({"max": 100, "waitSeconds": 0, "ack": ack}),
            )
            .await;
        ack = event_ids(&r);
        if ack.is_empty() {
            break;
        }
        seen.extend(ack.iter().cloned());
    }
    assert_eq!(
        seen, posted,
        "every event, once, in the order it was accepted"
    );
    // Nothing comes again, not even after a new session.
    mcp.close().await;
    let mut again = McpClient::http(&app.base, &token).await;
    assert_eq!(drain(&mut again).await, Vec::<String>::new());
    let activity = app.activity(&agent, &wid).await;
    assert!(
        activity.iter().all(|d| d["status"] == "acked"),
        "{activity:?}"
    );
}

#[actix_web::test]
async fn an_event_not_acked_in_time_comes_back_as_the_next_attempt() {
    let app = spawn_app_with(|c| c.ack_timeout = Duration::from_secs(1)).await;
    let (agent, token) = app.create_agent("llm").await;
    let wid = generic_webhook(&app, &token).await;
    let posted = post_events(&app, &wid, 2).await;
    let mut mcp = McpClient::http(&app.base, &token).await;

    let first = mcp
        .ok("next_events", json!({"max": 1, "waitSeconds": 0}))
        .await;
    assert_eq!(event_ids(&first), [posted[0].clone()]);
    assert_eq!(first["events"][0]["attempt"], 1);
    // While it is out, the next call gets the one after it, not it again.
    let second = mcp
        .ok("next_events", json!({"max": 5, "waitSeconds": 0}))
        .await;
    assert_eq!(event_ids(&second), [posted[1].clone()]);
    // Marked sent, as the socket marks what it sends (without waiting for the mark).
    for id in &posted {
        wait_status(&app, &token, &wid, id, "sent").await;
    }

    // Unacked past the timeout: handed out again, in order, each as attempt 2; a call
    // waits for a lease to run out rather than returning empty. (Their leases began a
    // moment apart, so they may come back in one call or in two.)
    let mut again = Vec::new();
    while again.len() < 2 {
        let r = mcp
            .ok("next_events", json!({"max": 5, "waitSeconds": 10}))
            .await;
        let events = r["events"].as_array().unwrap();
        assert!(!events.is_empty(), "a lease ran out within the wait: {r}");
        assert!(events.iter().all(|e| e["attempt"] == 2), "{r}");
        again.extend(event_ids(&r));
    }
    assert_eq!(again, posted);
    let acked = mcp.ok("ack_events", json!({"deliveryIds": posted})).await;
    assert_eq!(acked, json!({"acked": 2, "errors": []}));
    let after = mcp.ok("next_events", json!({"waitSeconds": 2})).await;
    assert_eq!(event_ids(&after), Vec::<String>::new());
    // Acks are committed before the answer: acked at once, after two attempts.
    let activity = app.activity(&agent, &wid).await;
    assert!(
        activity
            .iter()
            .all(|d| d["status"] == "acked" && d["attempts"] == 2),
        "{activity:?}"
    );
}

#[actix_web::test]
async fn an_event_whose_leases_keep_running_out_fails_at_max_attempts_and_the_next_goes_on() {
    let app = spawn_app_with(|c| {
        c.ack_timeout = Duration::from_secs(1);
        c.max_attempts = 2;
    })
    .await;
    let (_, token) = app.create_agent("llm").await;
    let wid = generic_webhook(&app, &token).await;
    let posted = post_events(&app, &wid, 2).await;
    let mut mcp = McpClient::http(&app.base, &token).await;
    let mut attempts_of_first = Vec::new();
    let mut acked = Vec::new();
    // Calls until one waits out its whole wait with nothing: the first is never acked.
    loop {
        let r = mcp
            .ok("next_events", json!({"max": 5, "waitSeconds": 3}))
            .await;
        let events = r["events"].as_array().unwrap().clone();
        if events.is_empty() {
            break;
        }
        for e in events {
            let id = s(&e["deliveryId"]);
            if id == posted[0] {
                attempts_of_first.push(e["attempt"].as_i64().unwrap());
            } else {
                mcp.ok("ack_events", json!({"deliveryIds": [id]})).await;
                acked.push(id);
            }
        }
    }
    assert_eq!(attempts_of_first, [1, 2]);
    assert_eq!(acked, [posted[1].clone()]);
    let failed = wait_status(&app, &token, &wid, &posted[0], "failed").await;
    assert_eq!(failed["reason"], "gave up after 2 attempts");
    let detail = app
        .get(
            &format!("/v1/agents/me/webhooks/{wid}/deliveries/{}", posted[0]),
            &token,
        )
        .await;
    let history: Vec<(Value, Value, Value)> = detail.json["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["attempt"].clone(), h["via"].clone(), h["outcome"].clone()))
        .collect();
    assert_eq!(
        history,
        [
            (json!(1), json!("mcp"), json!("timeout")),
            (json!(2), json!("mcp"), json!("timeout"))
        ]
    );
    mcp.close().await;
}

#[actix_web::test]
async fn a_wait_returns_empty_at_its_end_and_at_once_when_an_event_arrives() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("llm").await;
    let wid = generic_webhook(&app, &token).await;
    let mut mcp = McpClient::http(&app.base, &token).await;

    let quiet = mcp.call("next_events", json!({"waitSeconds": 2})).await;
    assert_eq!(
        event_ids(&quiet["ok"]["structuredContent"]),
        Vec::<String>::new()
    );
    let quiet_seconds = quiet["ok"]["seconds"].as_f64().unwrap();
    assert!(
        quiet_seconds >= 1.9,
        "it waited its two seconds: {quiet_seconds}"
    );
    let waited = mcp.call("next_events", json!({"waitSeconds": 0})).await["ok"]["seconds"]
        .as_f64()
        .unwrap();
    assert!(waited < 2.0, "waitSeconds 0 does not wait: {waited}");

    // A 20 s wait, and an event posted half a second into it.
    let started = Instant::now();
    mcp.send_only(json!({"op": "call", "tool": "next_events", "args": {"waitSeconds": 20}}))
        .await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let posted = post_events(&app, &wid, 1).await;
    let r = mcp.answer().await;
    let elapsed = started.elapsed();
    assert_eq!(event_ids(&r["ok"]["structuredContent"]), posted, "{r}");
    assert!(
        elapsed < Duration::from_secs(10),
        "the wait ended with the event, not at its end: {elapsed:?}"
    );
}

#[actix_web::test]
async fn next_events_is_refused_while_the_agent_has_a_socket() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("llm").await;
    let wid = generic_webhook(&app, &token).await;
    let mut mcp = McpClient::http(&app.base, &token).await;

    // A wait in progress ends when the socket connects, with the same refusal.
    mcp.send_only(json!({"op": "call", "tool": "next_events", "args": {"waitSeconds": 20}}))
        .await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let mut socket = app.connect(&token).await;
    let r = mcp.answer().await;
    assert_eq!(r["ok"]["isError"], true, "{r}");
    assert_eq!(r["ok"]["structuredContent"]["error"]["code"], "conflict");
    assert!(r["ok"]["seconds"].as_f64().unwrap() < 10.0, "{r}");

    let posted = post_events(&app, &wid, 1).await;
    let e = mcp.err("next_events", json!({"waitSeconds": 0})).await;
    assert_eq!(e["code"], "conflict");
    assert!(s(&e["message"]).contains("WebSocket"), "{e}");
    // The socket has the event; the tools other than next_events still work.
    let d = socket.next_delivery(5).await;
    assert_eq!(d["deliveryId"], posted[0].as_str());
    mcp.ok("list_webhooks", json!({})).await;
    socket.close().await;
}

#[actix_web::test]
async fn kill_9_loses_nothing_that_was_accepted_and_nothing_acked_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut proc = HubProcess::start(dir.path(), port, &["--ack-timeout", "60s"]);
    let hub = HubClient::new(port, proc.owner_token.as_deref().unwrap());
    let (agent, token) = hub.create_agent("llm").await;
    let wh = hub.create_webhook(&token, "me", "hook", "generic").await;
    let wid = s(&wh["webhookId"]);
    let posted = post_events(&hub, &wid, 300).await;

    let mut mcp = McpClient::http(&hub.base, &token).await;
    // 150 read and acked; 50 more read and not acked when the hub dies.
    let mut acked = Vec::new();
    let mut batch = event_ids(
        &mcp.ok("next_events", json!({"max": 100, "waitSeconds": 0}))
            .await,
    );
    acked.extend(batch.clone());
    let r = mcp
        .ok(
            "next_events",
            json!({"max": 50, "waitSeconds": 0, "ack": batch}),
        )
        .await;
    batch = event_ids(&r);
    acked.extend(batch.clone());
    let r = mcp
        .ok(
            "next_events",
            json!({"max": 50, "waitSeconds": 0, "ack": batch}),
        )
        .await;
    let unacked = event_ids(&r);
    assert_eq!(acked.len() + unacked.len(), 200);
    proc.kill9();
    mcp.close().await;

    let _proc = HubProcess::start(dir.path(), port, &["--ack-timeout", "60s"]);
    let mut mcp = McpClient::http(&hub.base, &token).await;
    // Leases died with the hub: what was out comes at once, then the rest, in order.
    let after = drain(&mut mcp).await;
    assert_eq!(
        after,
        posted[150..],
        "nothing acked again, nothing lost, in order"
    );
    assert_eq!(&after[..50], &unacked[..]);
    let activity = hub
        .get(
            &format!("/v1/agents/{agent}/webhooks/{wid}/deliveries?limit=500"),
            &hub.owner_token,
        )
        .await;
    let deliveries = activity.json["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 300);
    assert!(deliveries.iter().all(|d| d["status"] == "acked"));
}

#[actix_web::test]
async fn hookhub_mcp_serves_the_same_tools_over_stdio() {
    let app = spawn_app().await;
    let (agent, token) = app.create_agent("llm").await;
    let (_, sibling_token) = app.create_agent("other").await;
    let theirs = generic_webhook(&app, &sibling_token).await;
    let mut mcp = McpClient::stdio(&app.base, &token).await;

    let names: Vec<String> = mcp.tools().await.iter().map(|t| s(&t["name"])).collect();
    assert_eq!(names.len(), 12);
    assert!(names.contains(&"next_events".to_owned()));
    let created = mcp.ok("create_webhook", json!({"name": "via stdio"})).await;
    let wid = s(&created["webhookId"]);
    let owner_view = app
        .get(
            &format!("/v1/agents/{agent}/webhooks/{wid}"),
            &app.owner_token,
        )
        .await;
    assert_eq!(owner_view.json["createdBy"], "agent");

    app.secrets
        .lock()
        .unwrap()
        .insert(wid.clone(), s(&created["signingSecret"]));
    let posted = post_events(&app, &wid, 3).await;
    let got = mcp.ok("next_events", json!({"waitSeconds": 5})).await;
    assert_eq!(event_ids(&got), posted);
    let acked = mcp.ok("ack_events", json!({"deliveryIds": posted})).await;
    assert_eq!(acked["acked"], 3);

    let e = mcp.err("get_webhook", json!({"webhookId": theirs})).await;
    assert_eq!(e, json!({"code": "not_found", "message": "not found"}));
    let unknown = mcp.call("no_such_tool", json!({})).await;
    assert_eq!(unknown["rpcError"]["code"], -32602, "{unknown}");
    mcp.close().await;
}

#[actix_web::test]
async fn a_stdio_relay_with_a_wrong_token_stops_and_says_why() {
    let app = spawn_app().await;
    for token in ["hh_agent_not-a-token", app.owner_token.as_str()] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookhub"))
            .arg("mcp")
            .env("HOOKHUB_URL", &app.base)
            .env("HOOKHUB_AGENT_TOKEN", token)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(!out.status.success());
        assert!(out.stdout.is_empty(), "nothing but MCP on stdout");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("refused HOOKHUB_AGENT_TOKEN (401)")
                && stderr.contains("must be an agent token"),
            "{stderr}"
        );
        assert!(!stderr.contains(token), "the token is not printed");
    }
}

/// Over raw HTTP, as what is answered is the point: the SDK's own client gives up on its
/// whole session when the hub closes its other connections.
#[actix_web::test]
async fn a_wait_in_progress_at_shutdown_ends_with_no_events_not_an_error() {
    let mut app = spawn_app().await;
    let (_, token) = app.create_agent("llm").await;
    let wait = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"next_events","arguments":{"waitSeconds":20}}}"#;
    let shutdown = app.take_shutdown();
    let started = Instant::now();
    let (answer, ()) = futures_util::join!(
        raw(
            &app,
            Some(&token),
            &[("mcp-protocol-version", "2025-11-25")],
            wait
        ),
        async {
            actix_web::rt::time::sleep(Duration::from_millis(500)).await;
            let _ = shutdown.send(());
        }
    );
    assert_eq!(answer.status, 200, "{:?}", answer.raw);
    let result = &answer.json["result"];
    assert_eq!(result["isError"], false, "{:?}", answer.raw);
    assert_eq!(
        event_ids(&result["structuredContent"]),
        Vec::<String>::new()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    app.stop().await;
}

#[actix_web::test]
async fn past_a_thousand_unacked_events_next_events_says_so_until_some_are_acked() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("llm").await;
    let wid = generic_webhook(&app, &token).await;
    let posted = post_events(&app, &wid, 1010).await;
    let mut mcp = McpClient::http(&app.base, &token).await;
    let mut out = Vec::new();
    for _ in 0..10 {
        let r = mcp
            .ok("next_events", json!({"max": 100, "waitSeconds": 0}))
            .await;
        out.extend(event_ids(&r));
    }
    assert_eq!(out, posted[..1000]);
    let e = mcp.err("next_events", json!({"waitSeconds": 5})).await;
    assert_eq!(e["code"], "conflict");
    assert!(
        s(&e["message"]).contains("1000 events are handed out and not acked"),
        "{e}"
    );
    // Acked on the same call: room again, and the next ones come.
    let r = mcp
        .ok("next_events", json!({"waitSeconds": 0, "ack": &out[..100]}))
        .await;
    assert_eq!(r["acked"], 100);
    assert_eq!(event_ids(&r), posted[1000..]);
}

/// Raw HTTP to `/v1/mcp`, for what no SDK sends.
async fn raw(app: &TestApp, token: Option<&str>, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut req = app
        .client
        .post(app.url("/v1/mcp"))
        .insert_header(("content-type", "application/json"))
        .insert_header(("accept", "application/json, text/event-stream"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for h in headers {
        req = req.insert_header(*h);
    }
    let mut resp = req.send_body(body.to_owned()).await.unwrap();
    let raw = resp.body().limit(1 << 20).await.unwrap();
    Resp {
        status: resp.status().as_u16(),
        json: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        raw,
        headers: resp.headers().clone(),
    }
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

#[actix_web::test]
async fn who_may_call_is_decided_before_mcp_is_spoken() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("llm").await;

    let none = raw(&app, None, &[], INITIALIZE).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.json["error"]["code"], "unauthorized");
    let wrong = raw(&app, Some("hh_agent_nope"), &[], INITIALIZE).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json, none.json);
    let owner = raw(&app, Some(&app.owner_token), &[], INITIALIZE).await;
    assert_eq!(owner.status, 401);
    assert_eq!(owner.json["error"]["code"], "unauthorized");
    assert!(s(&owner.json["error"]["message"]).contains("agent token"));

    // A page of another site may not drive the hub from a browser; the hub's own may.
    let evil = raw(
        &app,
        Some(&token),
        &[("origin", "https://evil.example")],
        INITIALIZE,
    )
    .await;
    assert_eq!(evil.status, 403);
    assert_eq!(evil.json["error"]["code"], "forbidden_origin");
    let own = raw(&app, Some(&token), &[("origin", &app.base)], INITIALIZE).await;
    assert_eq!(own.status, 200, "{:?}", own.raw);
    assert_eq!(own.json["result"]["serverInfo"]["name"], "hookhub");
    // Listed origins pass too.
    let listed =
        spawn_app_with(|c| c.mcp_allowed_origins = vec!["http://localhost:6274".into()]).await;
    let (_, listed_token) = listed.create_agent("llm").await;
    let inspector = raw(
        &listed,
        Some(&listed_token),
        &[("origin", "http://localhost:6274")],
        INITIALIZE,
    )
    .await;
    assert_eq!(inspector.status, 200, "{:?}", inspector.raw);
}

#[actix_web::test]
async fn bad_input_gets_an_error_never_a_500_or_a_dropped_connection() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("llm").await;
    let mut mcp = McpClient::http(&app.base, &token).await;

    let unknown = mcp.call("drop_table", json!({})).await;
    assert_eq!(unknown["rpcError"]["code"], -32602, "{unknown}");
    assert!(s(&unknown["rpcError"]["message"]).contains("create_webhook"));

    for (tool, args, field) in [
        ("create_webhook", json!({"name": 7}), "name"),
        ("create_webhook", json!({"name": "x".repeat(5000)}), "name"),
        (
            "create_webhook",
            json!({"name": "x", "provider": "paypal"}),
            "provider",
        ),
        ("get_webhook", json!({"webhookId": ["whk_"]}), "webhookId"),
        (
            "list_deliveries",
            json!({"webhookId": "whk_x", "limit": {}}),
            "limit",
        ),
        ("next_events", json!({"max": 1000}), "max"),
        ("next_events", json!({"waitSeconds": "soon"}), "waitSeconds"),
        ("next_events", json!({"ack": "dlv_x"}), "ack"),
        (
            "ack_events",
            json!({"deliveryIds": vec!["dlv_x"; 1001]}),
            "deliveryIds",
        ),
        ("ack_events", json!({}), "deliveryIds"),
    ] {
        let e = mcp.err(tool, args).await;
        assert_eq!(e["code"], "invalid_request", "{tool}: {e}");
        assert_eq!(e["field"], field, "{tool}: {e}");
    }
    // The session goes on after all of it.
    mcp.ok("list_webhooks", json!({})).await;

    // What no SDK sends: not JSON, not JSON-RPC, too large. Each is refused, none is a
    // 500, and the hub answers the next request.
    let call = |args: Value| {
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "create_webhook", "arguments": args}})
        .to_string()
    };
    let huge = call(json!({"name": "x".repeat(400 * 1024)}));
    for (what, body, status, code) in [
        ("not JSON", "{\"jsonrpc\": \"2.0\", ", 400, -32700),
        ("not JSON-RPC", r#"{"hello": "world"}"#, 400, -32600),
        (
            "a batch",
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            400,
            -32600,
        ),
        (
            "no such method",
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/explode"}"#,
            200,
            -32601,
        ),
    ] {
        let r = raw(&app, Some(&token), &[], body).await;
        assert_eq!(r.status, status, "{what}: {:?}", r.raw);
        assert_eq!(r.json["jsonrpc"], "2.0", "{what}: {:?}", r.raw);
        assert_eq!(r.json["error"]["code"], code, "{what}: {:?}", r.raw);
    }
    let big = raw(&app, Some(&token), &[], &huge).await;
    assert_eq!(big.status, 413);
    assert_eq!(big.json["error"]["code"], "payload_too_large");
    let still = raw(&app, Some(&token), &[], INITIALIZE).await;
    assert_eq!(still.status, 200);
    mcp.ok("list_webhooks", json!({})).await;
}

#[actix_web::test]
async fn the_handshake_revisions_of_the_python_sdk_all_work() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("llm").await;
    for mode in ["auto", "legacy"] {
        let mut mcp = McpClient::http_with_mode(&app.base, &token, mode).await;
        let created = mcp.ok("create_webhook", json!({"name": mode})).await;
        assert!(s(&created["webhookId"]).starts_with("whk_"));
        mcp.close().await;
    }
}

/// The official TypeScript SDK, as `scripts/test` installs it (`MCP_NODE_DIR`): one
/// session of `tests/mcp/ts-client.cjs`, as JSON.
async fn typescript_session(args: &[&str]) -> Value {
    let node_dir = std::env::var("MCP_NODE_DIR")
        .unwrap_or_else(|_| format!("{}/target/mcp-node", env!("CARGO_MANIFEST_DIR")));
    assert!(
        std::path::Path::new(&node_dir)
            .join("node_modules/@modelcontextprotocol/sdk")
            .exists(),
        "no MCP TypeScript SDK in {node_dir}: run scripts/test, which installs it"
    );
    let script = format!("{}/tests/mcp/ts-client.cjs", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("node")
            .arg(script)
            .args(args)
            .env("MCP_NODE_DIR", node_dir)
            .output(),
    )
    .await
    .expect("the TypeScript client finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("{stdout} {}", String::from_utf8_lossy(&out.stderr)))
}

#[actix_web::test]
async fn the_typescript_sdk_works_over_both_transports() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("llm").await;
    let wid = generic_webhook(&app, &token).await;
    for transport in ["http", "stdio"] {
        let posted = post_events(&app, &wid, 2).await;
        let mut args = vec![transport, app.base.as_str(), token.as_str()];
        if transport == "stdio" {
            args.push(env!("CARGO_BIN_EXE_hookhub"));
        }
        let out = typescript_session(&args).await;
        assert!(out.get("exception").is_none(), "{transport}: {out}");
        assert_eq!(out["server"]["name"], "hookhub");
        assert_eq!(out["tools"].as_array().unwrap().len(), 12, "{out}");
        assert_eq!(
            event_ids(&out["events"]["structuredContent"]),
            posted,
            "{transport}"
        );
        assert_eq!(out["acked"]["structuredContent"]["acked"], 2);
        assert_eq!(out["created"]["isError"], false, "{out}");
        assert!(s(&out["created"]["structuredContent"]["url"]).contains("/v1/hooks/whk_"));
        assert_eq!(out["notFound"]["isError"], true);
        assert_eq!(
            out["notFound"]["structuredContent"],
            json!({"error": {"code": "not_found", "message": "not found"}})
        );
    }
}

#[actix_web::test]
async fn a_wait_begun_with_a_token_that_is_then_rotated_gets_nothing_more() {
    let app = spawn_app().await;
    let (agent, token) = app.create_agent("llm").await;
    let wid = generic_webhook(&app, &token).await;
    let mut mcp = McpClient::http(&app.base, &token).await;

    mcp.send_only(json!({"op": "call", "tool": "next_events", "args": {"waitSeconds": 20}}))
        .await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let rotated = app
        .post(
            &format!("/v1/agents/{agent}/token/rotate"),
            &app.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200);
    let started = Instant::now();
    let posted = post_events(&app, &wid, 1).await;
    let r = mcp.answer().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the wait ran to its end"
    );
    assert_eq!(r["ok"]["isError"], true, "{r}");
    assert_eq!(
        r["ok"]["structuredContent"]["error"]["code"], "unauthorized",
        "{r}"
    );
    assert!(!r.to_string().contains(posted[0].as_str()), "{r}");
    // The event waits for the agent's new token.
    let fresh = rotated.json["token"].as_str().unwrap();
    let mut again = McpClient::http(&app.base, fresh).await;
    let taken = again.ok("next_events", json!({"waitSeconds": 0})).await;
    assert_eq!(event_ids(&taken), posted);
}
