//! Events that fail: nack, the attempt limit, `failed`, discard, the attempt history and
//! redeliver by filter; none of them may hold up the deliveries behind a failing one, and
//! none of it may be lost to a `kill -9`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{
    process::{free_port, HubProcess},
    spawn_app, spawn_app_with, wait_status, HubClient,
};

/// Posts `n` events numbered from 0; their ids in order.
async fn post_events(hub: &HubClient, webhook_id: &str, n: usize, event: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let body = json!({"type": event, "n": i}).to_string();
        let r = hub
            .ingest_signed(webhook_id, body, &[("content-type", "application/json")])
            .await;
        assert_eq!(r.status, 202, "{:?}", r.json);
        ids.push(r.json["deliveryId"].as_str().unwrap().to_owned());
    }
    ids
}

async fn detail(hub: &HubClient, token: &str, webhook_id: &str, id: &str) -> Value {
    let r = hub
        .get(
            &format!("/v1/agents/me/webhooks/{webhook_id}/deliveries/{id}"),
            token,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    r.json
}

fn outcomes(detail: &Value) -> Vec<(i64, String)> {
    detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["attempt"].as_i64().unwrap(),
                h["outcome"].as_str().unwrap_or("out").to_owned(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn a_nack_without_requeue_fails_that_delivery_and_every_later_one_arrives() {
    let app = spawn_app().await;
    let hub = &app.hub;
    let (_, token, wid) = hub.agent_with_webhook().await;
    let ids = post_events(hub, &wid, 5, "order.created").await;
    let mut sock = hub.connect(&token).await;
    let mut arrived = Vec::new();
    while arrived.len() < 5 {
        let d = sock.next_delivery(10).await;
        let id = d["deliveryId"].as_str().unwrap().to_owned();
        if id == ids[1] {
            sock.send_json(json!({
                "type": "nack", "deliveryId": id, "requeue": false,
                "reason": "schema v3 not supported", "result": {"status": 422, "ms": 7}
            }))
            .await;
        } else {
            sock.send_json(
                json!({"type": "ack", "deliveryId": id, "result": {"status": 204, "ms": 2}}),
            )
            .await;
        }
        arrived.push(id);
    }
    assert_eq!(arrived, ids, "every delivery, once each, in order");
    let failed = wait_status(hub, &token, &wid, &ids[1], "failed").await;
    assert_eq!(failed["reason"], "nacked: schema v3 not supported");
    for id in [&ids[0], &ids[2], &ids[3], &ids[4]] {
        wait_status(hub, &token, &wid, id, "acked").await;
    }
    let d = detail(hub, &token, &wid, &ids[1]).await;
    assert_eq!(outcomes(&d), [(1, "nacked".to_owned())]);
    let h = &d["history"][0];
    assert_eq!(h["via"], "socket");
    assert_eq!(h["reason"], "schema v3 not supported");
    assert_eq!(h["result"], json!({"status": 422, "ms": 7}));
    assert!(h["sentAt"].is_string() && h["at"].is_string(), "{h}");
    let d = detail(hub, &token, &wid, &ids[0]).await;
    assert_eq!(outcomes(&d), [(1, "acked".to_owned())]);
    assert_eq!(d["history"][0]["result"], json!({"status": 204, "ms": 2}));

    // Nothing of it comes back on a new connection: it is not pending.
    sock.close().await;
    let mut again = hub.connect(&token).await;
    assert!(
        again.next_incoming(2).await.is_none(),
        "a failed delivery is not handed out again"
    );
    let metrics = scrape_metrics(hub).await;
    assert!(
        metrics.contains("hookhub_deliveries_failed_total{reason=\"nacked\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hookhub_delivery_attempts_per_ack_count 4"),
        "{metrics}"
    );
}

async fn scrape_metrics(hub: &HubClient) -> String {
    let r = hub.request("GET", "/metrics", None, None).await;
    assert_eq!(r.status, 200);
    String::from_utf8(r.raw.to_vec()).unwrap()
}

#[actix_web::test]
async fn a_nack_with_requeue_comes_again_after_a_backoff_with_the_next_attempt() {
    let app = spawn_app().await;
    let hub = &app.hub;
    let (_, token, wid) = hub.agent_with_webhook().await;
    let ids = post_events(hub, &wid, 2, "push").await;
    let mut sock = hub.connect(&token).await;
    let first = sock.next_delivery(10).await;
    assert_eq!(first["deliveryId"], ids[0].as_str());
    let nacked_at = std::time::Instant::now();
    sock.send_json(json!({"type": "nack", "deliveryId": ids[0], "reason": "busy"}))
        .await;
    // The one behind it is not held up by the retry.
    let second = sock.next_delivery(10).await;
    assert_eq!(second["deliveryId"], ids[1].as_str());
    sock.ack(&ids[1]).await;
    let again = sock.next_delivery(10).await;
    assert_eq!(again["deliveryId"], ids[0].as_str());
    assert_eq!(again["attempt"], 2);
    assert!(
        nacked_at.elapsed() >= Duration::from_millis(900),
        "handed again only after the backoff"
    );
    sock.ack(&ids[0]).await;
    wait_status(hub, &token, &wid, &ids[0], "acked").await;
    let d = detail(hub, &token, &wid, &ids[0]).await;
    assert_eq!(
        outcomes(&d),
        [(1, "nacked".to_owned()), (2, "acked".to_owned())]
    );
    assert_eq!(d["attempts"], 2);
}

#[actix_web::test]
async fn a_delivery_never_acked_fails_after_max_attempts_and_nothing_behind_it_waits() {
    let app = spawn_app_with(|c| {
        c.max_attempts = 3;
        c.ack_timeout = Duration::from_millis(300);
    })
    .await;
    let hub = &app.hub;
    let (_, token, wid) = hub.agent_with_webhook().await;
    let ids = post_events(hub, &wid, 4, "push").await;
    let mut sock = hub.connect(&token).await;
    let mut attempts_of_stuck = Vec::new();
    let mut acked = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let Some(crate::harness::Incoming::Json(d)) = sock.next_incoming(3).await else {
            break;
        };
        assert!(std::time::Instant::now() < deadline);
        let id = d["deliveryId"].as_str().unwrap().to_owned();
        if id == ids[0] {
            attempts_of_stuck.push(d["attempt"].as_i64().unwrap());
        } else {
            sock.ack(&id).await;
            acked.push(id);
        }
    }
    assert_eq!(
        attempts_of_stuck,
        [1, 2, 3],
        "handed out max-attempts times, no more"
    );
    assert_eq!(
        acked,
        ids[1..],
        "the rest arrived, in order, without waiting"
    );
    let failed = wait_status(hub, &token, &wid, &ids[0], "failed").await;
    assert_eq!(failed["reason"], "gave up after 3 attempts");
    assert_eq!(failed["attempts"], 3);
    let d = detail(hub, &token, &wid, &ids[0]).await;
    assert_eq!(
        outcomes(&d),
        [
            (1, "timeout".to_owned()),
            (2, "timeout".to_owned()),
            (3, "timeout".to_owned())
        ]
    );

    // Redelivered, it comes again with the next attempt number, and has its own budget.
    let r = hub
        .post(
            &format!(
                "/v1/agents/me/webhooks/{wid}/deliveries/{}/redeliver",
                ids[0]
            ),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let d = sock.next_delivery(10).await;
    assert_eq!(d["deliveryId"], ids[0].as_str());
    assert_eq!(d["attempt"], 4);
    sock.ack(&ids[0]).await;
    let done = wait_status(hub, &token, &wid, &ids[0], "acked").await;
    assert!(done.get("reason").is_none(), "{done}");
}

#[actix_web::test]
async fn discard_gives_a_delivery_up_for_its_owner_and_is_not_found_for_a_sibling() {
    let app = spawn_app_with(|c| c.ack_timeout = Duration::from_millis(400)).await;
    let hub = &app.hub;
    let (agent, token, wid) = hub.agent_with_webhook().await;
    let (sibling, sibling_token) = hub.create_agent("sibling").await;
    let ids = post_events(hub, &wid, 3, "push").await;
    let mut sock = hub.connect(&token).await;
    for id in &ids {
        assert_eq!(sock.next_delivery(10).await["deliveryId"], id.as_str());
    }

    let path = |agent: &str, id: &str| {
        format!("/v1/agents/{agent}/webhooks/{wid}/deliveries/{id}/discard")
    };
    let stranger = hub
        .post(&path("me", &ids[0]), &sibling_token, json!({}))
        .await;
    assert_eq!(stranger.status, 404, "{:?}", stranger.json);
    let as_owner_of_sibling = hub
        .post(&path(&sibling, &ids[0]), &hub.owner_token, json!({}))
        .await;
    assert_eq!(as_owner_of_sibling.status, 404);
    assert_eq!(stranger.json, as_owner_of_sibling.json);

    // The owner discards one, the agent another, both in flight; the third is acked.
    let r = hub
        .post(&path(&agent, &ids[0]), &hub.owner_token, json!({}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["status"], "failed");
    let again = hub
        .post(&path(&agent, &ids[0]), &hub.owner_token, json!({}))
        .await;
    assert_eq!(again.status, 200, "idempotent: {:?}", again.json);
    let r = hub.post(&path("me", &ids[1]), &token, json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    sock.ack(&ids[2]).await;
    for id in &ids[..2] {
        let d = wait_status(hub, &token, &wid, id, "failed").await;
        assert_eq!(d["reason"], "discarded");
    }
    assert_eq!(
        outcomes(&detail(hub, &token, &wid, &ids[0]).await),
        [(1, "discarded".to_owned())]
    );
    // The discarded ones are not sent again, not even when their ack timeout passes.
    assert!(sock.next_incoming(2).await.is_none());
    wait_status(hub, &token, &wid, &ids[2], "acked").await;
    let acked = hub.post(&path("me", &ids[2]), &token, json!({})).await;
    assert_eq!(acked.status, 409, "{:?}", acked.json);
    assert_eq!(acked.json["error"]["code"], "conflict");
    sock.close().await;
    let mut fresh = hub.connect(&token).await;
    assert!(fresh.next_incoming(2).await.is_none());

    // The same from the socket's tool, for one still queued behind a stuck one.
    let ids = post_events(hub, &wid, 1, "push").await;
    let d = fresh.next_delivery(10).await;
    assert_eq!(d["deliveryId"], ids[0].as_str());
    fresh
        .send_json(
            json!({"type": "call", "id": "c1", "tool": "discard_delivery",
            "args": {"webhookId": wid, "deliveryId": ids[0]}}),
        )
        .await;
    let result = fresh.next_json(10).await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["result"]["status"], "failed");
    wait_status(hub, &token, &wid, &ids[0], "failed").await;
}

#[actix_web::test]
async fn redeliver_by_filter_counts_on_a_dry_run_then_requeues_those_in_order() {
    let app = spawn_app().await;
    let hub = &app.hub;
    let (_, token, wid) = hub.agent_with_webhook().await;
    let pushes = post_events(hub, &wid, 4, "push").await;
    let issues = post_events(hub, &wid, 2, "issues").await;
    let mut sock = hub.connect(&token).await;
    // Pushes 0 and 2 fail, push 1 and 3 and the issues are acked.
    for _ in 0..6 {
        let d = sock.next_delivery(10).await;
        let id = d["deliveryId"].as_str().unwrap();
        if id == pushes[0] || id == pushes[2] {
            sock.send_json(json!({"type": "nack", "deliveryId": id, "requeue": false}))
                .await;
        } else {
            sock.ack(id).await;
        }
    }
    wait_status(hub, &token, &wid, &pushes[2], "failed").await;
    wait_status(hub, &token, &wid, &issues[1], "acked").await;

    let path = format!("/v1/agents/me/webhooks/{wid}/deliveries/redeliver");
    let dry = hub.post(&path, &token, json!({"dryRun": true})).await;
    assert_eq!((dry.status, dry.json.clone()), (200, json!({"matched": 2})));
    let dry = hub
        .post(
            &path,
            &token,
            json!({"status": ["acked"], "event": "push", "dryRun": true}),
        )
        .await;
    assert_eq!(dry.json, json!({"matched": 2}));
    let bad = hub.post(&path, &token, json!({"status": ["queued"]})).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json["error"]["field"], "status");

    // Nothing changed on the dry runs.
    assert!(sock.next_incoming(1).await.is_none());
    let r = hub.post(&path, &token, json!({})).await;
    assert_eq!((r.status, r.json.clone()), (202, json!({"requeued": 2})));
    let a = sock.next_delivery(10).await;
    let b = sock.next_delivery(10).await;
    assert_eq!(
        [a["deliveryId"].clone(), b["deliveryId"].clone()],
        [json!(pushes[0]), json!(pushes[2])],
        "in their original order"
    );
    assert_eq!(
        (a["attempt"].clone(), b["attempt"].clone()),
        (json!(2), json!(2))
    );
    sock.ack(&pushes[0]).await;
    sock.ack(&pushes[2]).await;
    wait_status(hub, &token, &wid, &pushes[2], "acked").await;

    // Acked ones by event and time, through the tool, with the history keeping their acks.
    let since = detail(hub, &token, &wid, &issues[0]).await["receivedAt"].clone();
    sock.send_json(
        json!({"type": "call", "id": "r", "tool": "redeliver_deliveries",
        "args": {"webhookId": wid, "status": ["acked"], "event": "issues", "since": since}}),
    )
    .await;
    let result = sock.next_json(10).await;
    assert_eq!(result["result"], json!({"requeued": 2}), "{result}");
    for id in &issues {
        let d = sock.next_delivery(10).await;
        assert_eq!(d["deliveryId"], id.as_str());
        sock.ack(id).await;
    }
    wait_status(hub, &token, &wid, &issues[1], "acked").await;
    assert_eq!(
        outcomes(&detail(hub, &token, &wid, &issues[1]).await),
        [(1, "acked".to_owned()), (2, "acked".to_owned())]
    );
}

#[actix_web::test]
async fn a_redeliver_by_filter_past_the_backlog_cap_queues_nothing() {
    let app = spawn_app_with(|c| c.backlog_cap = 2).await;
    let hub = &app.hub;
    let (_, token, wid) = hub.agent_with_webhook().await;
    let ids = post_events(hub, &wid, 2, "push").await;
    let mut sock = hub.connect(&token).await;
    for id in &ids {
        sock.next_delivery(10).await;
        sock.send_json(json!({"type": "nack", "deliveryId": id, "requeue": false}))
            .await;
    }
    wait_status(hub, &token, &wid, &ids[1], "failed").await;
    sock.close().await;
    post_events(hub, &wid, 1, "push").await;
    let path = format!("/v1/agents/me/webhooks/{wid}/deliveries/redeliver");
    let r = hub.post(&path, &token, json!({})).await;
    assert_eq!(r.status, 503, "{:?}", r.json);
    assert_eq!(r.json["error"]["code"], "backlog_full");
    for id in &ids {
        wait_status(hub, &token, &wid, id, "failed").await;
    }
}

#[actix_web::test]
async fn the_activity_is_searched_by_event_id_provider_id_and_time() {
    let app = spawn_app().await;
    let hub = &app.hub;
    let (_, token, wid) = hub.agent_with_webhook().await;
    let pushes = post_events(hub, &wid, 2, "push").await;
    let issue = post_events(hub, &wid, 1, "issues").await;
    let list = |query: String| {
        let path = format!("/v1/agents/me/webhooks/{wid}/deliveries?{query}");
        let token = token.clone();
        async move {
            let r = hub.get(&path, &token).await;
            assert_eq!(r.status, 200, "{:?}", r.json);
            r.json["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["deliveryId"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list("event=push".into()).await,
        [pushes[1].clone(), pushes[0].clone()]
    );
    assert_eq!(list(format!("q={}", issue[0])).await, [issue[0].clone()]);
    // The generic provider's id is the `webhook-id` its sender signed with.
    let d = detail(hub, &token, &wid, &pushes[0]).await;
    let provider_id = d["headers"]["webhook-id"].as_str().unwrap().to_owned();
    assert_eq!(list(format!("q={provider_id}")).await, [pushes[0].clone()]);
    let at = d["receivedAt"].as_str().unwrap().to_owned();
    let later = detail(hub, &token, &wid, &issue[0]).await["receivedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        list(format!("since={at}&until={later}")).await,
        [pushes[1].clone(), pushes[0].clone()]
    );
    let bad = hub
        .get(
            &format!("/v1/agents/me/webhooks/{wid}/deliveries?since=tuesday"),
            &token,
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json["error"]["field"], "since");
}

#[actix_web::test]
async fn failed_deliveries_and_their_history_survive_a_kill_9_and_a_retry_budget_resumes() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut hub = HubProcess::start(
        data.path(),
        port,
        &["--ack-timeout", "300ms", "--max-attempts", "3"],
    );
    let client = HubClient::new(port, hub.owner_token.as_deref().unwrap());
    let (_, token, wid) = client.agent_with_webhook().await;
    let ids = post_events(&client, &wid, 3, "push").await;
    let mut sock = client.connect(&token).await;
    // The first is nacked for good; the second is left unacked for two attempts; the
    // third is acked.
    let mut second_attempts = 0;
    while second_attempts < 2 {
        let d = sock.next_delivery(10).await;
        let id = d["deliveryId"].as_str().unwrap();
        if id == ids[0] {
            sock.send_json(
                json!({"type": "nack", "deliveryId": id, "requeue": false, "reason": "bad"}),
            )
            .await;
        } else if id == ids[1] {
            second_attempts += 1;
        } else {
            sock.ack(id).await;
        }
    }
    wait_status(&client, &token, &wid, &ids[0], "failed").await;
    wait_status(&client, &token, &wid, &ids[2], "acked").await;
    // Sends are recorded a few milliseconds after they go (a lost record costs only a
    // resend): kill once the second send of the second is on disk.
    for _ in 0..200 {
        if detail(&client, &token, &wid, &ids[1]).await["attempts"] == 2 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    hub.kill9();
    drop(sock);

    let hub = HubProcess::start(
        data.path(),
        port,
        &["--ack-timeout", "300ms", "--max-attempts", "3"],
    );
    let client = HubClient::new(port, &client.owner_token);
    let failed = wait_status(&client, &token, &wid, &ids[0], "failed").await;
    assert_eq!(failed["reason"], "nacked: bad");
    assert_eq!(
        outcomes(&detail(&client, &token, &wid, &ids[0]).await),
        [(1, "nacked".to_owned())]
    );
    // The second had two attempts before the kill: it has one left, then it fails.
    let mut sock = client.connect(&token).await;
    let d = sock.next_delivery(10).await;
    assert_eq!(d["deliveryId"], ids[1].as_str());
    assert_eq!(d["attempt"], 3);
    assert!(sock.next_incoming(3).await.is_none(), "not a fourth time");
    let failed = wait_status(&client, &token, &wid, &ids[1], "failed").await;
    assert_eq!(failed["reason"], "gave up after 3 attempts");
    drop(hub);
}
