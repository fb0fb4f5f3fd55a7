//! The agent's self-service tools over its socket: each one gives what its HTTP twin gives,
//! reaches only the agent's own webhooks, survives bad calls, and runs beside deliveries.

use std::collections::VecDeque;

use futures_util::SinkExt;
use serde_json::{json, Value};

use crate::harness::{keys, spawn_app, spawn_app_with, wait_status, AgentSocket, Resp, TestApp};

/// An agent's socket that keeps deliveries arriving while it waits for a call's result.
struct Agent {
    sock: AgentSocket,
    deliveries: VecDeque<Value>,
}

impl Agent {
    async fn connect(app: &TestApp, token: &str) -> Self {
        Self {
            sock: app.connect(token).await,
            deliveries: VecDeque::new(),
        }
    }

    async fn send_call(&mut self, id: &str, tool: &str, args: Value) {
        self.sock
            .send_json(json!({ "type": "call", "id": id, "tool": tool, "args": args }))
            .await;
    }

    /// The next frame that is not a delivery (deliveries are kept for later).
    async fn next_other(&mut self) -> Value {
        loop {
            let frame = self.sock.next_json(10).await;
            if frame["type"] == "delivery" {
                self.deliveries.push_back(frame);
            } else {
                return frame;
            }
        }
    }

    /// Calls a tool and returns its whole `result` frame.
    async fn call(&mut self, id: &str, tool: &str, args: Value) -> Value {
        self.send_call(id, tool, args).await;
        let frame = self.next_other().await;
        assert_eq!(
            frame["type"], "result",
            "expected the result of {id}, got {frame}"
        );
        assert_eq!(frame["id"], id, "a result for another call: {frame}");
        frame
    }

    /// Calls a tool that must succeed; its `result`.
    async fn ok(&mut self, tool: &str, args: Value) -> Value {
        let frame = self.call("ok", tool, args).await;
        assert_eq!(frame["ok"], true, "{tool} failed: {frame}");
        assert!(frame.get("error").is_none(), "{frame}");
        frame["result"].clone()
    }

    /// Calls a tool that must fail; its `error`.
    async fn err(&mut self, tool: &str, args: Value) -> Value {
        let frame = self.call("err", tool, args).await;
        assert_eq!(frame["ok"], false, "{tool} should have failed: {frame}");
        assert!(frame.get("result").is_none(), "{frame}");
        frame["error"].clone()
    }

    async fn next_delivery(&mut self) -> Value {
        if let Some(d) = self.deliveries.pop_front() {
            return d;
        }
        self.sock.next_delivery(10).await
    }
}

/// The `error` of an HTTP error answer, checking its status.
fn http_error(r: &Resp, status: u16) -> Value {
    assert_eq!(r.status, status, "{:?}", r.json);
    r.json["error"].clone()
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

/// Sends a body to a generic webhook, signed the Standard Webhooks way with its secret.
async fn ingest_signed(app: &TestApp, webhook_id: &str, secret: &str, body: &str) -> String {
    let signed = crate::harness::senders::standard_webhook_headers(secret, body.as_bytes());
    let mut headers = vec![("content-type", "application/json")];
    headers.extend(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let r = app.ingest(webhook_id, body.to_owned(), &headers).await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    s(&r.json["deliveryId"])
}

#[actix_web::test]
async fn a_webhook_created_by_tool_is_the_owners_to_see_as_created_by_the_agent() {
    let app = spawn_app().await;
    let (agent, token) = app.create_agent("bot").await;
    let mut a = Agent::connect(&app, &token).await;

    let created = a
        .ok(
            "create_webhook",
            json!({ "name": "GitHub pushes", "provider": "github" }),
        )
        .await;
    // Exactly the seed's create shape, as over HTTP.
    assert_eq!(
        keys(&created),
        [
            "active",
            "createdAt",
            "name",
            "provider",
            "signingSecret",
            "url",
            "webhookId"
        ]
    );
    let id = s(&created["webhookId"]);
    assert!(id.starts_with("whk_"));
    assert_eq!(created["url"], format!("{}/v1/hooks/{id}", app.base));
    assert_eq!(created["name"], "GitHub pushes");
    assert_eq!(created["provider"], "github");
    assert_eq!(created["active"], true);
    assert!(s(&created["signingSecret"]).starts_with("whsec_"));

    let list = app
        .get(&format!("/v1/agents/{agent}/webhooks"), &app.owner_token)
        .await;
    assert_eq!(list.status, 200);
    let listed: Vec<&Value> = list.json["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["webhookId"] == id.as_str())
        .collect();
    assert_eq!(listed.len(), 1, "{:?}", list.json);
    assert_eq!(listed[0]["createdBy"], "agent");
    assert_eq!(listed[0]["name"], "GitHub pushes");
    assert_eq!(listed[0]["provider"], "github");
    assert!(listed[0].get("signingSecret").is_none());

    let one = app
        .get(
            &format!("/v1/agents/{agent}/webhooks/{id}"),
            &app.owner_token,
        )
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json["createdBy"], "agent");
    assert_eq!(&one.json, listed[0]);

    // The same through the owner's HTTP create is the user's.
    let by_user = app
        .create_webhook(&app.owner_token, &agent, "by hand", "generic")
        .await;
    let one = app
        .get(
            &format!("/v1/agents/{agent}/webhooks/{}", s(&by_user["webhookId"])),
            &app.owner_token,
        )
        .await;
    assert_eq!(one.json["createdBy"], "user");
}

#[actix_web::test]
async fn every_tool_answers_what_its_http_twin_answers() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("bot").await;
    let mut a = Agent::connect(&app, &token).await;
    let me = "/v1/agents/me/webhooks";

    // create_webhook / POST
    let by_tool = a
        .ok(
            "create_webhook",
            json!({ "name": "twin", "provider": "generic" }),
        )
        .await;
    let by_http = app
        .post(me, &token, json!({ "name": "twin", "provider": "generic" }))
        .await;
    assert_eq!(by_http.status, 201);
    assert_eq!(keys(&by_tool), keys(&by_http.json));
    for field in ["name", "provider", "active"] {
        assert_eq!(by_tool[field], by_http.json[field], "{field}");
    }
    let (t_id, h_id) = (s(&by_tool["webhookId"]), s(&by_http.json["webhookId"]));
    assert_ne!(t_id, h_id);
    let t_secret = s(&by_tool["signingSecret"]);
    // Default provider, either way.
    let default = a.ok("create_webhook", json!({ "name": "plain" })).await;
    assert_eq!(default["provider"], "generic");

    // Invalid input: the same error object, field included.
    for body in [
        json!({}),
        json!({ "name": "" }),
        json!({ "name": "x".repeat(201) }),
        json!({ "name": 5 }),
        json!({ "name": "x", "provider": "gitlab" }),
    ] {
        let e = a.err("create_webhook", body.clone()).await;
        let h = app.post(me, &token, body.clone()).await;
        assert_eq!(e, http_error(&h, 400), "{body}");
        assert_eq!(e["code"], "invalid_request");
        assert!(e["field"].is_string(), "{e}");
    }

    // list_webhooks / GET
    let listed = a.ok("list_webhooks", json!({})).await;
    let http = app.get(me, &token).await;
    assert_eq!(http.status, 200);
    assert_eq!(listed, http.json);
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 3);
    // `args` may be left out.
    a.sock
        .send_json(json!({ "type": "call", "id": "no-args", "tool": "list_webhooks" }))
        .await;
    let frame = a.next_other().await;
    assert_eq!(frame["id"], "no-args");
    assert_eq!(frame["result"], http.json);

    // get_webhook / GET one
    for id in [&t_id, &h_id] {
        let got = a.ok("get_webhook", json!({ "webhookId": id })).await;
        let http = app.get(&format!("{me}/{id}"), &token).await;
        assert_eq!(http.status, 200);
        assert_eq!(got, http.json);
        assert!(got.get("signingSecret").is_none());
    }
    for missing in ["whk_01J9Z8Q0000000000000000000", "nope"] {
        let e = a.err("get_webhook", json!({ "webhookId": missing })).await;
        let h = app.get(&format!("{me}/{missing}"), &token).await;
        assert_eq!(e, http_error(&h, 404));
        assert_eq!(e["code"], "not_found");
    }

    // rotate_webhook_secret / POST rotate
    let rotated = a
        .ok("rotate_webhook_secret", json!({ "webhookId": t_id }))
        .await;
    let http = app
        .post(&format!("{me}/{h_id}/rotate"), &token, json!({}))
        .await;
    assert_eq!(http.status, 200);
    assert_eq!(keys(&rotated), keys(&http.json));
    assert_eq!(keys(&rotated), ["signingSecret", "webhookId"]);
    assert_eq!(rotated["webhookId"], t_id.as_str());
    assert_eq!(http.json["webhookId"], h_id.as_str());
    let new_secret = s(&rotated["signingSecret"]);
    assert!(new_secret.starts_with("whsec_"));
    assert_ne!(new_secret, t_secret);
    // The URL stays.
    let after = a.ok("get_webhook", json!({ "webhookId": t_id })).await;
    assert_eq!(after["url"], by_tool["url"]);

    // set_provider_secret / PUT provider-secret: on stripe both succeed, with no body.
    let stripe_t = s(&a
        .ok(
            "create_webhook",
            json!({ "name": "s", "provider": "stripe" }),
        )
        .await["webhookId"]);
    let stripe_h = s(&app
        .post(me, &token, json!({ "name": "s", "provider": "stripe" }))
        .await
        .json["webhookId"]);
    let set = a
        .ok(
            "set_provider_secret",
            json!({ "webhookId": stripe_t, "secret": "whsec_from_stripe" }),
        )
        .await;
    assert_eq!(set, json!({}));
    let http = app
        .request(
            "PUT",
            &format!("{me}/{stripe_h}/provider-secret"),
            Some(&token),
            Some(json!({ "secret": "whsec_from_stripe" })),
        )
        .await;
    assert_eq!(http.status, 204);
    assert!(http.raw.is_empty());
    // The same refusals: a generic webhook has no provider secret; a secret is required.
    for (id, body) in [
        (&t_id, json!({ "secret": "x" })),
        (&stripe_t, json!({})),
        (&stripe_t, json!({ "secret": 7 })),
    ] {
        let mut args = body.clone();
        args["webhookId"] = json!(id);
        let e = a.err("set_provider_secret", args).await;
        let h = app
            .request(
                "PUT",
                &format!("{me}/{id}/provider-secret"),
                Some(&token),
                Some(body),
            )
            .await;
        assert_eq!(e, http_error(&h, 400));
        assert_eq!(e["code"], "invalid_request");
    }

    // list_deliveries / GET deliveries: three deliveries, each acked.
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(ingest_signed(&app, &t_id, &new_secret, &format!(r#"{{"type":"t.{n}"}}"#)).await);
    }
    for id in &ids {
        let d = a.next_delivery().await;
        assert_eq!(d["deliveryId"], id.as_str());
        a.sock.ack(id).await;
    }
    for id in &ids {
        wait_status(&app, &token, &t_id, id, "acked").await;
    }
    let deliveries = format!("{me}/{t_id}/deliveries");
    let all = a.ok("list_deliveries", json!({ "webhookId": t_id })).await;
    let http = app.get(&deliveries, &token).await;
    assert_eq!(http.status, 200);
    assert_eq!(all, http.json);
    assert_eq!(all["deliveries"].as_array().unwrap().len(), 3);
    assert_eq!(
        all["deliveries"][0]["deliveryId"],
        ids[2].as_str(),
        "newest first"
    );
    let page = a
        .ok("list_deliveries", json!({ "webhookId": t_id, "limit": 2 }))
        .await;
    let http = app.get(&format!("{deliveries}?limit=2"), &token).await;
    assert_eq!(page, http.json);
    let cursor = s(&page["nextCursor"]);
    let next = a
        .ok(
            "list_deliveries",
            json!({ "webhookId": t_id, "limit": "2", "before": cursor }),
        )
        .await;
    let http = app
        .get(&format!("{deliveries}?limit=2&before={cursor}"), &token)
        .await;
    assert_eq!(next, http.json);
    assert_eq!(next["deliveries"][0]["deliveryId"], ids[0].as_str());
    assert_eq!(next["nextCursor"], Value::Null);
    let acked = a
        .ok(
            "list_deliveries",
            json!({ "webhookId": t_id, "status": "acked" }),
        )
        .await;
    assert_eq!(
        acked,
        app.get(&format!("{deliveries}?status=acked"), &token)
            .await
            .json
    );
    for (arg, query) in [
        (json!(0), "limit=0"),
        (json!("ten"), "limit=ten"),
        (json!(501), "limit=501"),
    ] {
        let e = a
            .err(
                "list_deliveries",
                json!({ "webhookId": t_id, "limit": arg }),
            )
            .await;
        let h = app.get(&format!("{deliveries}?{query}"), &token).await;
        assert_eq!(e, http_error(&h, 400));
    }
    let e = a
        .err(
            "list_deliveries",
            json!({ "webhookId": t_id, "status": "lost" }),
        )
        .await;
    assert_eq!(
        e,
        http_error(
            &app.get(&format!("{deliveries}?status=lost"), &token).await,
            400
        )
    );

    // redeliver / POST redeliver: queued again, and handed over again on the socket.
    let again = a
        .ok(
            "redeliver",
            json!({ "webhookId": t_id, "deliveryId": ids[0] }),
        )
        .await;
    assert_eq!(again, json!({ "deliveryId": ids[0], "status": "queued" }));
    let d = a.next_delivery().await;
    assert_eq!(d["deliveryId"], ids[0].as_str());
    assert_eq!(d["attempt"], 2);
    a.sock.ack(&ids[0]).await;
    let http = app
        .post(
            &format!("{deliveries}/{}/redeliver", ids[1]),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(http.status, 202);
    assert_eq!(keys(&http.json), keys(&again));
    assert_eq!(http.json["status"], again["status"]);
    let d = a.next_delivery().await;
    assert_eq!(d["deliveryId"], ids[1].as_str());
    a.sock.ack(&ids[1]).await;
    let e = a
        .err(
            "redeliver",
            json!({ "webhookId": t_id, "deliveryId": "dlv_01J9Z8Q0000000000000000000" }),
        )
        .await;
    let h = app
        .post(
            &format!("{deliveries}/dlv_01J9Z8Q0000000000000000000/redeliver"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(e, http_error(&h, 404));

    // delete_webhook / DELETE: deactivates, idempotent, URL dead, history kept.
    let gone = a.ok("delete_webhook", json!({ "webhookId": t_id })).await;
    assert_eq!(gone, json!({ "webhookId": t_id, "active": false }));
    let http = app
        .request("DELETE", &format!("{me}/{h_id}"), Some(&token), None)
        .await;
    assert_eq!(http.status, 200);
    assert_eq!(http.json, json!({ "webhookId": h_id, "active": false }));
    assert_eq!(
        a.ok("delete_webhook", json!({ "webhookId": t_id })).await,
        gone
    );
    let got = a.ok("get_webhook", json!({ "webhookId": t_id })).await;
    assert_eq!(got["active"], false);
    assert_eq!(got, app.get(&format!("{me}/{t_id}"), &token).await.json);
    assert_eq!(app.ingest(&t_id, "{}", &[]).await.status, 404);
    let history = a.ok("list_deliveries", json!({ "webhookId": t_id })).await;
    assert_eq!(history["deliveries"].as_array().unwrap().len(), 3);
}

#[actix_web::test]
async fn an_agents_tools_cannot_reach_a_siblings_webhooks() {
    let app = spawn_app().await;
    let (_, token_a) = app.create_agent("a").await;
    let (agent_b, token_b) = app.create_agent("b").await;
    let own = app.create_webhook(&token_a, "me", "mine", "generic").await;
    let own_id = s(&own["webhookId"]);
    let theirs = app
        .create_webhook(&app.owner_token, &agent_b, "theirs", "stripe")
        .await;
    let w = s(&theirs["webhookId"]);
    // A delivery of B's, waiting in B's queue (B is offline).
    let d = {
        let generic_b = app.create_webhook(&token_b, "me", "g", "generic").await;
        let id = s(&generic_b["webhookId"]);
        (
            id.clone(),
            ingest_signed(&app, &id, &s(&generic_b["signingSecret"]), "{}").await,
        )
    };
    let before_w = app
        .get(
            &format!("/v1/agents/{agent_b}/webhooks/{w}"),
            &app.owner_token,
        )
        .await
        .json;

    let mut a = Agent::connect(&app, &token_a).await;
    // What A's HTTP gets for B's webhook: 404, byte-for-byte what a made-up id gets.
    let http_404 = app
        .get(&format!("/v1/agents/me/webhooks/{w}"), &token_a)
        .await;
    let made_up = app
        .get(
            "/v1/agents/me/webhooks/whk_01J9Z8Q0000000000000000000",
            &token_a,
        )
        .await;
    assert_eq!(http_404.raw, made_up.raw);
    let not_found = http_error(&http_404, 404);

    for (tool, args) in [
        ("get_webhook", json!({ "webhookId": w })),
        ("rotate_webhook_secret", json!({ "webhookId": w })),
        (
            "set_provider_secret",
            json!({ "webhookId": w, "secret": "whsec_x" }),
        ),
        ("delete_webhook", json!({ "webhookId": w })),
        ("list_deliveries", json!({ "webhookId": w })),
        ("list_deliveries", json!({ "webhookId": d.0 })),
        ("redeliver", json!({ "webhookId": d.0, "deliveryId": d.1 })),
        // B's delivery through A's own webhook.
        (
            "redeliver",
            json!({ "webhookId": own_id, "deliveryId": d.1 }),
        ),
    ] {
        let e = a.err(tool, args.clone()).await;
        assert_eq!(e, not_found, "{tool} {args}");
    }
    // Naming another agent in the arguments changes nothing: a tool's agent is `me`.
    let listed = a.ok("list_webhooks", json!({ "agentId": agent_b })).await;
    let ids: Vec<&Value> = listed["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["webhookId"])
        .collect();
    assert_eq!(ids, [&json!(own_id)]);

    // B's webhook and delivery are untouched.
    let after_w = app
        .get(
            &format!("/v1/agents/{agent_b}/webhooks/{w}"),
            &app.owner_token,
        )
        .await
        .json;
    assert_eq!(before_w, after_w);
    assert_eq!(after_w["active"], true);
    let b_list = app
        .get(
            &format!("/v1/agents/me/webhooks/{}/deliveries", d.0),
            &token_b,
        )
        .await;
    assert_eq!(b_list.json["deliveries"][0]["status"], "queued");
    assert_eq!(b_list.json["deliveries"][0]["attempts"], 0);
    // And B still gets its delivery, once.
    let mut b = Agent::connect(&app, &token_b).await;
    let got = b.next_delivery().await;
    assert_eq!(got["deliveryId"], d.1.as_str());
    assert_eq!(got["attempt"], 1);
}

#[actix_web::test]
async fn bad_calls_get_an_error_and_the_socket_stays_up() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("bot").await;
    let wh = app.create_webhook(&token, "me", "w", "generic").await;
    let wid = s(&wh["webhookId"]);
    let mut a = Agent::connect(&app, &token).await;

    // Failed calls: a `result` with the call's id and the error.
    let cases = [
        (
            json!({ "type": "call", "id": "c1", "tool": "launch_rockets", "args": {} }),
            "tool",
        ),
        (json!({ "type": "call", "id": "c2", "args": {} }), "tool"),
        (
            json!({ "type": "call", "id": "c3", "tool": "get_webhook", "args": {} }),
            "webhookId",
        ),
        (
            json!({ "type": "call", "id": "c4", "tool": "get_webhook", "args": { "webhookId": 12 } }),
            "webhookId",
        ),
        (
            json!({ "type": "call", "id": "c5", "tool": "redeliver", "args": { "webhookId": wid } }),
            "deliveryId",
        ),
        (
            json!({ "type": "call", "id": "c6", "tool": "list_webhooks", "args": [1, 2] }),
            "args",
        ),
        (
            json!({ "type": "call", "id": "c7", "tool": "create_webhook", "args": "name=x" }),
            "args",
        ),
        (
            json!({ "type": "call", "id": "c8", "tool": "create_webhook", "args": {} }),
            "name",
        ),
    ];
    for (frame, field) in cases {
        let id = frame["id"].clone();
        a.sock.send_json(frame.clone()).await;
        let r = a.next_other().await;
        assert_eq!(r["type"], "result", "{frame} → {r}");
        assert_eq!(r["id"], id);
        assert_eq!(r["ok"], false);
        assert_eq!(r["error"]["code"], "invalid_request", "{frame} → {r}");
        assert_eq!(r["error"]["field"], field, "{frame} → {r}");
        assert!(!s(&r["error"]["message"]).is_empty());
        // Still up: a good call works.
        let listed = a.ok("list_webhooks", json!({})).await;
        assert_eq!(listed["webhooks"][0]["webhookId"], wid.as_str());
    }

    // Frames that cannot be acted on at all: an `error` frame.
    let texts = [
        "this is not json".to_owned(),
        json!({ "type": "call", "tool": "list_webhooks", "args": {} }).to_string(),
        json!({ "type": "call", "id": 7, "tool": "list_webhooks" }).to_string(),
        json!({ "type": "subscribe" }).to_string(),
        json!({ "id": "c9", "tool": "list_webhooks" }).to_string(),
        json!({ "type": "ack", "deliveryId": "not-a-delivery" }).to_string(),
        json!({ "type": "ack" }).to_string(),
        "[]".to_owned(),
    ];
    for text in &texts {
        a.sock.send_text(text).await;
        let r = a.next_other().await;
        assert_eq!(r["type"], "error", "{text} → {r}");
        assert_eq!(r["error"]["code"], "invalid_frame", "{text} → {r}");
        assert!(!s(&r["error"]["message"]).is_empty());
        assert_eq!(
            a.ok("get_webhook", json!({ "webhookId": wid })).await["webhookId"],
            wid.as_str()
        );
    }
    a.sock
        .framed
        .send(awc::ws::Message::Binary(bytes::Bytes::from_static(
            b"\x00\x01",
        )))
        .await
        .unwrap();
    let r = a.next_other().await;
    assert_eq!(r["type"], "error");
    assert_eq!(r["error"]["code"], "invalid_frame");

    // After all of it the socket still calls and still delivers.
    let created = a.ok("create_webhook", json!({ "name": "after" })).await;
    assert_eq!(created["active"], true);
    let id = ingest_signed(
        &app,
        &wid,
        &s(&wh["signingSecret"]),
        r#"{"type":"still.here"}"#,
    )
    .await;
    let d = a.next_delivery().await;
    assert_eq!(d["deliveryId"], id.as_str());
    a.sock.ack(&id).await;
    wait_status(&app, &token, &wid, &id, "acked").await;
}

#[actix_web::test]
async fn calls_are_answered_while_deliveries_wait_for_acks() {
    // A window of one: while a delivery is unacked, the rest wait; calls must not.
    let app = spawn_app_with(|c| c.window = 1).await;
    let (_, token) = app.create_agent("bot").await;
    let wh = app.create_webhook(&token, "me", "w", "generic").await;
    let (wid, secret) = (s(&wh["webhookId"]), s(&wh["signingSecret"]));
    let mut a = Agent::connect(&app, &token).await;

    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(ingest_signed(&app, &wid, &secret, &format!(r#"{{"n":{n}}}"#)).await);
    }
    let first = a.sock.next_delivery(10).await;
    assert_eq!(first["deliveryId"], ids[0].as_str());
    wait_status(&app, &token, &wid, &ids[0], "sent").await;
    // The window is full; calls still get answered, and no other delivery comes.
    let page = a.ok("list_deliveries", json!({ "webhookId": wid })).await;
    let statuses: Vec<&Value> = page["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!("queued"), &json!("queued"), &json!("sent")]
    );
    a.ok("create_webhook", json!({ "name": "meanwhile" })).await;
    assert!(
        a.deliveries.is_empty(),
        "the window of one was overrun: {:?}",
        a.deliveries
    );
    for (n, id) in ids.iter().enumerate() {
        if n > 0 {
            let d = a.next_delivery().await;
            assert_eq!(d["deliveryId"], id.as_str());
        }
        a.sock.ack(id).await;
    }
    wait_status(&app, &token, &wid, &ids[2], "acked").await;
}

#[actix_web::test]
async fn calls_and_deliveries_interleave_on_one_socket() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("bot").await;
    let wh = app.create_webhook(&token, "me", "w", "generic").await;
    let (wid, secret) = (s(&wh["webhookId"]), s(&wh["signingSecret"]));
    let mut a = Agent::connect(&app, &token).await;

    // Calls go out, and events are posted before any result is read.
    const N: usize = 10;
    for n in 0..N {
        a.send_call(
            &format!("c{n}"),
            "create_webhook",
            json!({ "name": format!("w{n}") }),
        )
        .await;
    }
    let mut posted = Vec::new();
    for n in 0..N {
        posted.push(ingest_signed(&app, &wid, &secret, &format!(r#"{{"n":{n}}}"#)).await);
    }
    let mut results = std::collections::BTreeMap::new();
    let mut delivered = Vec::new();
    while results.len() < N || delivered.len() < N {
        let frame = a.sock.next_json(10).await;
        match frame["type"].as_str() {
            Some("result") => {
                assert_eq!(frame["ok"], true, "{frame}");
                let previous = results.insert(s(&frame["id"]), frame["result"]["name"].clone());
                assert!(previous.is_none(), "two results for one call: {frame}");
            }
            Some("delivery") => {
                let id = s(&frame["deliveryId"]);
                a.sock.ack(&id).await;
                delivered.push(id);
            }
            _ => panic!("unexpected frame {frame}"),
        }
    }
    // Every call answered under its own id; every delivery once, in order.
    for n in 0..N {
        assert_eq!(results[&format!("c{n}")], format!("w{n}"));
    }
    assert_eq!(delivered, posted);
    let listed = a.ok("list_webhooks", json!({})).await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), N + 1);
    wait_status(&app, &token, &wid, &posted[N - 1], "acked").await;
}

#[actix_web::test]
async fn a_flood_of_pipelined_calls_is_answered_call_by_call() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("bot").await;
    let mut a = Agent::connect(&app, &token).await;
    // More than a session runs at once: each call gets exactly one answer, a result or a
    // refusal to wait, and the socket stays up.
    const N: usize = 100;
    for n in 0..N {
        a.send_call(&format!("f{n}"), "list_webhooks", json!({}))
            .await;
    }
    let mut answered = std::collections::HashSet::new();
    while answered.len() < N {
        let r = a.next_other().await;
        assert_eq!(r["type"], "result", "{r}");
        assert!(answered.insert(s(&r["id"])), "two answers for {}", r["id"]);
        if r["ok"] == false {
            assert_eq!(r["error"]["code"], "rate_limited", "{r}");
        } else {
            assert_eq!(r["result"], json!({ "webhooks": [] }));
        }
    }
    assert!(
        a.sock.next_incoming(1).await.is_none(),
        "an extra frame came"
    );
    assert_eq!(
        a.ok("list_webhooks", json!({})).await,
        json!({ "webhooks": [] })
    );
}
