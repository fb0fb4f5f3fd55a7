//! Realtime delivery: ingest, the agent socket, the offline backlog, acks and activity.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use actix_web::rt::time::sleep;
use base64::{engine::general_purpose::STANDARD, Engine};
use futures_util::{stream, SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::harness::{
    process::{free_port, HubProcess},
    spawn_app, spawn_app_with, AgentSocket, HubClient, Incoming,
};

/// Posts `per_stream` numbered events on each of `streams` concurrent streams, each stream
/// sequential, so that each stream has a defined receipt order. Returns the accepted ids
/// with their (stream, n).
async fn post_streams(
    hub: &HubClient,
    webhooks: &[String],
    streams: usize,
    per_stream: usize,
) -> HashMap<String, (usize, usize)> {
    let results = stream::iter(0..streams)
        .map(|s| async move {
            let wid = &webhooks[s % webhooks.len()];
            let mut ids = Vec::new();
            for n in 0..per_stream {
                let body = json!({"stream": s, "n": n}).to_string();
                let r = hub
                    .ingest_signed(wid, body, &[("content-type", "application/json")])
                    .await;
                assert_eq!(r.status, 202, "{:?}", r.json);
                ids.push((r.json["deliveryId"].as_str().unwrap().to_owned(), (s, n)));
            }
            ids
        })
        .buffer_unordered(streams)
        .collect::<Vec<_>>()
        .await;
    results.into_iter().flatten().collect()
}

/// Receives until `want` distinct deliveries have arrived, acking each (if `ack`), and
/// checks that every stream's events arrive in order with no gap, each stream starting at
/// `first_n`. Returns ids in arrival order.
async fn receive_in_order(
    sock: &mut AgentSocket,
    want: usize,
    ack: bool,
    first_n: u64,
) -> Vec<String> {
    let mut next_n: HashMap<u64, u64> = HashMap::new();
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    while seen.len() < want {
        let d = sock.next_delivery(20).await;
        let id = d["deliveryId"].as_str().unwrap().to_owned();
        let body: Value = serde_json::from_str(d["body"].as_str().unwrap()).unwrap();
        let (s, n) = (
            body["stream"].as_u64().unwrap(),
            body["n"].as_u64().unwrap(),
        );
        let expected = next_n.entry(s).or_insert(first_n);
        assert_eq!(n, *expected, "stream {s} out of order");
        *expected += 1;
        assert!(seen.insert(id.clone()), "duplicate {id} on one connection");
        if ack {
            sock.ack(&id).await;
        }
        order.push(id);
    }
    order
}

async fn wait_for_status(hub: &HubClient, agent: &str, wid: &str, id: &str, status: &str) {
    let path = format!("/v1/agents/{agent}/webhooks/{wid}/deliveries/{id}");
    let mut last = Value::Null;
    for _ in 0..100 {
        last = hub.get(&path, &hub.owner_token).await.json;
        if last["status"] == status {
            return;
        }
        sleep(Duration::from_millis(50)).await;
    }
    panic!("{id} never became {status}: {last}");
}

#[actix_web::test]
async fn online_agent_gets_a_delivery_and_acks_it() {
    let app = spawn_app().await;
    let (agent, token, wid) = app.agent_with_webhook().await;
    let mut sock = app.connect(&token).await;

    let r = app
        .ingest_signed(&wid, r#"{"type":"ping","n":1}"#, &[("x-custom", "yes")])
        .await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let id = r.json["deliveryId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("dlv_"));

    let d = sock.next_delivery(5).await;
    assert_eq!(d["deliveryId"], id.as_str());
    assert_eq!(d["webhookId"], wid.as_str());
    assert_eq!(d["provider"], "generic");
    assert_eq!(d["attempt"], 1);
    assert_eq!(d["body"], r#"{"type":"ping","n":1}"#);
    assert_eq!(d["bodyEncoding"], "utf8");
    assert_eq!(d["headers"]["x-custom"], "yes");
    assert!(d["receivedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(d["signature"]["webhook-id"], id.as_str());
    wait_for_status(&app, &agent, &wid, &id, "sent").await;
    sock.ack(&id).await;
    wait_for_status(&app, &agent, &wid, &id, "acked").await;
}

#[actix_web::test]
async fn offline_backlog_arrives_in_order_when_the_agent_connects() {
    let app = spawn_app().await;
    let (agent, token, wid) = app.agent_with_webhook().await;
    let posted = post_streams(&app, std::slice::from_ref(&wid), 1, 30).await;
    let list = app.activity(&agent, &wid).await;
    assert_eq!(list.len(), 30);
    assert!(list.iter().all(|d| d["status"] == "queued"));

    let mut sock = app.connect(&token).await;
    let got = receive_in_order(&mut sock, 30, true, 0).await;
    assert_eq!(
        got.iter().cloned().collect::<HashSet<_>>(),
        posted.keys().cloned().collect()
    );
    // Nothing more: no duplicate after the backlog.
    assert!(sock.next_incoming(1).await.is_none());
}

#[actix_web::test]
async fn a_socket_quiet_for_a_while_still_gets_its_resend_on_time() {
    // A quiet socket ticks only for its heartbeat (15 s here); a delivery must bring the
    // short tick back, or the resend would wait for the heartbeat.
    let app = spawn_app_with(|c| c.ack_timeout = Duration::from_millis(600)).await;
    let (_, token, wid) = app.agent_with_webhook().await;
    let mut sock = app.connect(&token).await;
    sleep(Duration::from_millis(1500)).await;
    let id = app.ingest_signed(&wid, "late", &[]).await.json["deliveryId"].clone();
    assert_eq!(sock.next_delivery(5).await["attempt"], 1);
    let again = sock.next_delivery(5).await;
    assert_eq!(again["deliveryId"], id);
    assert_eq!(again["attempt"], 2);
}

#[actix_web::test]
async fn unacked_delivery_is_sent_again_after_the_ack_timeout() {
    let app = spawn_app_with(|c| c.ack_timeout = Duration::from_millis(600)).await;
    let (_, token, wid) = app.agent_with_webhook().await;
    let mut sock = app.connect(&token).await;
    let id = app.ingest_signed(&wid, "one", &[]).await.json["deliveryId"].clone();
    let first = sock.next_delivery(5).await;
    assert_eq!(first["deliveryId"], id);
    assert_eq!(first["attempt"], 1);
    let second = sock.next_delivery(5).await;
    assert_eq!(second["deliveryId"], id);
    assert_eq!(second["attempt"], 2);
    sock.ack(id.as_str().unwrap()).await;
    // Acked: it does not come a third time.
    match sock.next_incoming(2).await {
        None => {}
        Some(Incoming::Json(v)) => assert_ne!(v["deliveryId"], id, "resent after its ack"),
        Some(_) => panic!("socket closed"),
    }
}

#[actix_web::test]
async fn a_newer_connection_replaces_the_older_one() {
    let app = spawn_app().await;
    let (agent, token, wid) = app.agent_with_webhook().await;
    let mut old = app.connect(&token).await;
    let id = app.ingest_signed(&wid, "x", &[]).await.json["deliveryId"].clone();
    assert_eq!(old.next_delivery(5).await["deliveryId"], id);

    let mut new = app.connect(&token).await;
    match old.next_incoming(5).await {
        Some(Incoming::Close(Some(reason))) => {
            assert_eq!(u16::from(reason.code), 4000);
            assert!(reason.description.unwrap().contains("replaced"));
        }
        _ => panic!("the older socket was not closed with a reason"),
    }
    // What the old connection left unacked comes on the new one.
    let again = new.next_delivery(5).await;
    assert_eq!(again["deliveryId"], id);
    assert_eq!(again["attempt"], 2);
    let agents = app.get("/v1/agents", &app.owner_token).await;
    assert_eq!(agents.json["agents"][0]["agentId"], agent.as_str());
    assert_eq!(agents.json["agents"][0]["connected"], true);
}

#[actix_web::test]
async fn ten_thousand_backlog_flushes_in_order_while_live_deliveries_arrive() {
    let app = spawn_app().await;
    let (_, token, wid) = app.agent_with_webhook().await;
    let webhooks = vec![wid.clone()];
    let backlog = post_streams(&app, &webhooks, 8, 1250).await;
    assert_eq!(backlog.len(), 10_000);

    let mut sock = app.connect(&token).await;
    // New deliveries (streams 8..12) arrive while the backlog flushes: the seam must
    // have no gap, duplicate or reordering.
    let live = async {
        sleep(Duration::from_millis(50)).await;
        let posted = stream::iter(8..12)
            .map(|s| {
                let wid = wid.clone();
                let app = &app;
                async move {
                    let mut ids = Vec::new();
                    for n in 0..100 {
                        let body = json!({"stream": s, "n": n}).to_string();
                        let r = app.ingest_signed(&wid, body, &[]).await;
                        assert_eq!(r.status, 202);
                        ids.push(r.json["deliveryId"].as_str().unwrap().to_owned());
                    }
                    ids
                }
            })
            .buffer_unordered(4)
            .collect::<Vec<_>>()
            .await;
        posted.into_iter().flatten().collect::<Vec<_>>()
    };
    let (received, live_ids) =
        futures_util::join!(receive_in_order(&mut sock, 10_400, true, 0), live);
    let received: HashSet<_> = received.into_iter().collect();
    assert_eq!(received.len(), 10_400);
    assert!(backlog.keys().all(|id| received.contains(id)));
    assert!(live_ids.iter().all(|id| received.contains(id)));
    assert!(
        sock.next_incoming(1).await.is_none(),
        "nothing extra after the flush"
    );
}

#[actix_web::test]
async fn an_agent_that_drops_mid_flush_gets_the_rest_in_order() {
    let app = spawn_app_with(|c| c.window = 20).await;
    let (agent, token, wid) = app.agent_with_webhook().await;
    let posted = post_streams(&app, std::slice::from_ref(&wid), 1, 300).await;
    let mut by_n: Vec<(usize, String)> =
        posted.iter().map(|(id, (_, n))| (*n, id.clone())).collect();
    by_n.sort();

    let mut sock = app.connect(&token).await;
    // Take 110, ack only the first 100, then vanish without a close frame.
    let mut first = Vec::new();
    for _ in 0..110 {
        let d = sock.next_delivery(10).await;
        first.push(d["deliveryId"].as_str().unwrap().to_owned());
        if first.len() <= 100 {
            sock.ack(first.last().unwrap()).await;
        }
    }
    // Acks are applied asynchronously; the property here is what happens to the unacked
    // ones, so let the last ack land before vanishing.
    wait_for_status(&app, &agent, &wid, &first[99], "acked").await;
    drop(sock);

    let mut sock = app.connect(&token).await;
    let rest = receive_in_order(&mut sock, 200, true, 100).await;
    // Exactly the 200 not acked, from the first unacked on, in receipt order.
    let expected: Vec<String> = by_n[100..].iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(rest, expected);
}

#[actix_web::test]
async fn concurrent_ingest_on_many_webhooks_of_one_agent() {
    let app = spawn_app().await;
    let (agent, token) = app.create_agent("bot").await;
    let mut webhooks = Vec::new();
    for i in 0..5 {
        let wh = app
            .create_webhook(&app.owner_token, &agent, &format!("hook {i}"), "generic")
            .await;
        webhooks.push(wh["webhookId"].as_str().unwrap().to_owned());
    }
    let mut sock = app.connect(&token).await;
    let (posted, received) = futures_util::join!(
        post_streams(&app, &webhooks, 5, 200),
        receive_in_order(&mut sock, 1000, true, 0)
    );
    let received: HashSet<_> = received.into_iter().collect();
    assert_eq!(received, posted.keys().cloned().collect());
}

#[actix_web::test]
async fn a_non_utf8_body_arrives_byte_exact() {
    let app = spawn_app().await;
    let (agent, token, wid) = app.agent_with_webhook().await;
    let body: Vec<u8> = (0..=255u8).rev().chain([0xff, 0xfe, 0x00]).collect();
    let r = app
        .ingest_signed(
            &wid,
            body.clone(),
            &[("content-type", "application/octet-stream")],
        )
        .await;
    let id = r.json["deliveryId"].as_str().unwrap().to_owned();
    let mut sock = app.connect(&token).await;
    let d = sock.next_delivery(5).await;
    assert_eq!(d["bodyEncoding"], "base64");
    assert_eq!(STANDARD.decode(d["body"].as_str().unwrap()).unwrap(), body);
    let detail = app
        .get(
            &format!("/v1/agents/{agent}/webhooks/{wid}/deliveries/{id}"),
            &app.owner_token,
        )
        .await;
    assert_eq!(detail.json["bodyEncoding"], "base64");
    assert_eq!(
        STANDARD
            .decode(detail.json["body"].as_str().unwrap())
            .unwrap(),
        body
    );
    assert_eq!(detail.json["sizeBytes"], body.len());
    assert_eq!(
        detail.json["headers"]["content-type"],
        "application/octet-stream"
    );
}

#[actix_web::test]
async fn a_body_over_the_limit_is_413_and_not_stored() {
    let app = spawn_app_with(|c| c.max_body_bytes = 1024).await;
    let (agent, _, wid) = app.agent_with_webhook().await;
    let r = app.ingest(&wid, vec![b'a'; 1025], &[]).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json["error"]["code"], "payload_too_large");
    // Streamed without a length: cut off as it passes the limit.
    let chunks =
        stream::iter((0..40).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'b'; 100]))));
    let mut resp = app
        .client
        .post(app.url(&format!("/v1/hooks/{wid}")))
        .send_stream(chunks)
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    // At the limit is fine.
    assert_eq!(
        app.ingest_signed(&wid, vec![b'c'; 1024], &[]).await.status,
        202
    );
    let list = app.activity(&agent, &wid).await;
    assert_eq!(list.len(), 1);
}

#[actix_web::test]
async fn unknown_and_deactivated_webhooks_are_the_same_404() {
    let app = spawn_app().await;
    let (agent, _, wid) = app.agent_with_webhook().await;
    assert_eq!(app.ingest_signed(&wid, "ok", &[]).await.status, 202);
    let del = app
        .request(
            "DELETE",
            &format!("/v1/agents/{agent}/webhooks/{wid}"),
            Some(&app.owner_token),
            None,
        )
        .await;
    assert_eq!(del.status, 200);
    let gone = app.ingest(&wid, "late", &[]).await;
    let unknown = app.ingest("whk_01J9Z8Q0000000000000000000", "x", &[]).await;
    let garbage = app.ingest("not-an-id", "x", &[]).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.raw, unknown.raw);
    assert_eq!(gone.raw, garbage.raw);
    // Its history stays readable.
    let list = app.activity(&agent, &wid).await;
    assert_eq!(list.len(), 1);
}

#[actix_web::test]
async fn a_full_backlog_answers_503_with_retry_after() {
    let app = spawn_app_with(|c| c.backlog_cap = 3).await;
    let (_, token, wid) = app.agent_with_webhook().await;
    for _ in 0..3 {
        assert_eq!(app.ingest_signed(&wid, "x", &[]).await.status, 202);
    }
    let full = app.ingest_signed(&wid, "x", &[]).await;
    assert_eq!(full.status, 503);
    assert_eq!(full.json["error"]["code"], "backlog_full");
    let retry = full.retry_after_secs();
    assert!(retry > 0);
    // Acking makes room.
    let mut sock = app.connect(&token).await;
    let d = sock.next_delivery(5).await;
    sock.ack(d["deliveryId"].as_str().unwrap()).await;
    let mut status = 0;
    for _ in 0..50 {
        status = app.ingest_signed(&wid, "x", &[]).await.status;
        if status == 202 {
            break;
        }
        sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 202);
}

#[actix_web::test]
async fn malformed_frames_get_error_frames_and_the_socket_stays_up() {
    let app = spawn_app().await;
    let (_, token, wid) = app.agent_with_webhook().await;
    let mut sock = app.connect(&token).await;
    for bad in [
        "not json",
        r#"{"type":"bogus"}"#,
        r#"{"type":"ack"}"#,
        r#"{"type":"ack","deliveryId":"nope"}"#,
        r#"[1,2,3]"#,
    ] {
        sock.send_text(bad).await;
        let e = sock.next_json(5).await;
        assert_eq!(e["type"], "error", "{bad}");
        assert_eq!(e["error"]["code"], "invalid_frame", "{bad}");
    }
    sock.framed
        .send(awc::ws::Message::Binary(bytes::Bytes::from_static(
            b"\x00\x01",
        )))
        .await
        .unwrap();
    assert_eq!(sock.next_json(5).await["type"], "error");
    // Still delivering.
    let id = app.ingest_signed(&wid, "still here", &[]).await.json["deliveryId"].clone();
    assert_eq!(sock.next_delivery(5).await["deliveryId"], id);
}

#[actix_web::test]
async fn redeliver_queues_an_acked_delivery_again() {
    let app = spawn_app().await;
    let (agent, token, wid) = app.agent_with_webhook().await;
    let mut sock = app.connect(&token).await;
    let id = app.ingest_signed(&wid, "again", &[]).await.json["deliveryId"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = sock.next_delivery(5).await;
    sock.ack(&id).await;
    assert_eq!(d["attempt"], 1);
    wait_for_status(&app, &agent, &wid, &id, "acked").await;

    let base = format!("/v1/agents/{agent}/webhooks/{wid}/deliveries");
    let r = app
        .post(
            &format!("{base}/{id}/redeliver"),
            &app.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(r.json["deliveryId"], id.as_str());
    // The first ack's time stays in the record while it is queued again.
    let detail = app.get(&format!("{base}/{id}"), &app.owner_token).await;
    assert!(["queued", "sent"].contains(&detail.json["status"].as_str().unwrap()));
    assert!(detail.json["ackedAt"].is_string());
    let again = sock.next_delivery(5).await;
    assert_eq!(again["deliveryId"], id.as_str());
    assert_eq!(again["attempt"], 2);
    sock.ack(&id).await;
    wait_for_status(&app, &agent, &wid, &id, "acked").await;
    // Both acks are in its history: the redeliver closed the first attempt, not erased it.
    let detail = app.get(&format!("{base}/{id}"), &app.owner_token).await;
    let history: Vec<(Value, Value)> = detail.json["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["attempt"].clone(), h["outcome"].clone()))
        .collect();
    assert_eq!(
        history,
        [(json!(1), json!("acked")), (json!(2), json!("acked"))]
    );

    // Not the caller's, or not a delivery: 404.
    let r = app
        .post(
            &format!("{base}/dlv_01J9Z8Q0000000000000000000/redeliver"),
            &app.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404);
}

/// The backlog cap holds for redeliver too: queueing an acked delivery again adds to the
/// backlog, so while it is full that is refused the way ingest is; queueing again one that
/// is still pending adds nothing, so it is not.
#[actix_web::test]
async fn redeliver_into_a_full_backlog_answers_503_until_there_is_room() {
    let app = spawn_app_with(|c| c.backlog_cap = 2).await;
    let (agent, token, wid) = app.agent_with_webhook().await;
    let mut sock = app.connect(&token).await;
    let post = async |body: &str| {
        let r = app.ingest_signed(&wid, body.to_owned(), &[]).await;
        assert_eq!(r.status, 202, "{:?}", r.json);
        r.json["deliveryId"].as_str().unwrap().to_owned()
    };
    let done = post("done").await;
    assert_eq!(sock.next_delivery(5).await["deliveryId"], done.as_str());
    sock.ack(&done).await;
    wait_for_status(&app, &agent, &wid, &done, "acked").await;
    let pending = [post("one").await, post("two").await];
    for id in &pending {
        assert_eq!(sock.next_delivery(5).await["deliveryId"], id.as_str());
    }
    let over = app.ingest_signed(&wid, "over", &[]).await;
    assert_eq!(
        over.json["error"]["code"], "backlog_full",
        "{:?}",
        over.json
    );

    let base = format!("/v1/agents/{agent}/webhooks/{wid}/deliveries");
    let redeliver = async |id: &str| {
        app.post(
            &format!("{base}/{id}/redeliver"),
            &app.owner_token,
            json!({}),
        )
        .await
    };
    let refused = redeliver(&done).await;
    assert_eq!(refused.status, 503, "{:?}", refused.json);
    assert_eq!(refused.json["error"]["code"], "backlog_full");
    assert!(refused.retry_after_secs() > 0);
    // The socket tool is the same operation, with the same answer.
    sock.send_json(json!({
        "type": "call", "id": "c1", "tool": "redeliver",
        "args": { "webhookId": wid, "deliveryId": done },
    }))
    .await;
    let result = sock.next_json(5).await;
    assert_eq!(result["type"], "result", "{result}");
    assert_eq!(result["ok"], false, "{result}");
    assert_eq!(result["error"]["code"], "backlog_full", "{result}");
    let detail = app.get(&format!("{base}/{done}"), &app.owner_token).await;
    assert_eq!(
        detail.json["status"], "acked",
        "a refused redeliver changes nothing"
    );

    let requeued = redeliver(&pending[0]).await;
    assert_eq!(requeued.status, 202, "{:?}", requeued.json);
    let again = sock.next_delivery(5).await;
    assert_eq!(again["deliveryId"], pending[0].as_str());
    assert_eq!(again["attempt"], 2);

    // Acks make room.
    for id in &pending {
        sock.ack(id).await;
        wait_for_status(&app, &agent, &wid, id, "acked").await;
    }
    let accepted = redeliver(&done).await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.json);
    let again = sock.next_delivery(5).await;
    assert_eq!(again["deliveryId"], done.as_str());
    assert_eq!(again["attempt"], 2);
}

#[actix_web::test]
async fn activity_pages_newest_first_with_a_cursor() {
    let app = spawn_app().await;
    let (agent, token, wid) = app.agent_with_webhook().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = app
            .ingest_signed(&wid, format!("event {i}"), &[("x-n", &i.to_string())])
            .await;
        ids.push(r.json["deliveryId"].as_str().unwrap().to_owned());
    }
    ids.reverse();
    let base = format!("/v1/agents/{agent}/webhooks/{wid}/deliveries");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{base}?limit=2&before={c}"),
            None => format!("{base}?limit=2"),
        };
        let page = app.get(&path, &token).await;
        assert_eq!(page.status, 200);
        for d in page.json["deliveries"].as_array().unwrap() {
            for k in [
                "deliveryId",
                "webhookId",
                "status",
                "event",
                "receivedAt",
                "sentAt",
                "ackedAt",
                "attempts",
                "sizeBytes",
                "verified",
            ] {
                assert!(d.get(k).is_some(), "{k} missing");
            }
            seen.push(d["deliveryId"].as_str().unwrap().to_owned());
        }
        match page.json["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let filtered = app.get(&format!("{base}?status=acked"), &token).await;
    assert_eq!(filtered.json["deliveries"], json!([]));
    for bad in [
        "limit=0",
        "limit=501",
        "limit=x",
        "status=done",
        "before=zzz",
    ] {
        let r = app.get(&format!("{base}?{bad}"), &token).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json["error"]["code"], "invalid_request");
    }
    let detail = app.get(&format!("{base}/{}", ids[0]), &token).await;
    assert_eq!(detail.json["body"], "event 4");
    assert_eq!(detail.json["headers"]["x-n"], "4");
}

#[actix_web::test]
async fn agents_show_connected_and_last_seen() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("bot").await;
    let before = app.get("/v1/agents", &app.owner_token).await.json["agents"][0].clone();
    assert_eq!(before["connected"], false);
    assert_eq!(before["lastSeenAt"], Value::Null);
    let sock = app.connect(&token).await;
    sleep(Duration::from_millis(200)).await;
    let during = app.get("/v1/agents", &app.owner_token).await.json["agents"][0].clone();
    assert_eq!(during["connected"], true);
    assert!(during["lastSeenAt"].is_string());
    sock.close().await;
    let mut after = Value::Null;
    for _ in 0..50 {
        after = app.get("/v1/agents", &app.owner_token).await.json["agents"][0].clone();
        if after["connected"] == false {
            break;
        }
        sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        after["connected"], false,
        "a dropped agent is offline at once"
    );
}

#[actix_web::test]
async fn retention_expires_unacked_and_prunes_acked() {
    let app = spawn_app_with(|c| {
        c.retention = Duration::from_millis(800);
        c.retention_sweep = Duration::from_millis(200);
    })
    .await;
    let (agent, token, wid) = app.agent_with_webhook().await;
    let mut sock = app.connect(&token).await;
    let acked = app.ingest_signed(&wid, "acked", &[]).await.json["deliveryId"].clone();
    sock.next_delivery(5).await;
    sock.ack(acked.as_str().unwrap()).await;
    sock.close().await;
    let unacked = app.ingest_signed(&wid, "never read", &[]).await.json["deliveryId"].clone();
    sleep(Duration::from_millis(1500)).await;
    let list = app.activity(&agent, &wid).await;
    let ds = &list;
    assert_eq!(ds.len(), 1, "the acked delivery was pruned: {ds:?}");
    assert_eq!(ds[0]["deliveryId"], unacked);
    assert_eq!(ds[0]["status"], "expired");
    let mut sock = app.connect(&token).await;
    assert!(
        sock.next_incoming(1).await.is_none(),
        "expired deliveries are not sent"
    );
}

#[actix_web::test]
async fn shutdown_closes_agent_sockets_with_1001() {
    let mut app = spawn_app().await;
    let (_, token, _) = app.agent_with_webhook().await;
    let mut sock = app.connect(&token).await;
    sleep(Duration::from_millis(100)).await;
    app.stop().await;
    match sock.next_incoming(5).await {
        Some(Incoming::Close(Some(reason))) => assert_eq!(u16::from(reason.code), 1001),
        _ => panic!("no 1001 close on shutdown"),
    }
}

/// The real binary, killed with SIGKILL while posts are in flight and deliveries unacked:
/// every delivery answered 202 reaches the agent after a restart, in order.
#[actix_web::test]
async fn kill_9_loses_no_accepted_delivery() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut hub = HubProcess::start(data.path(), port, &[]);
    let client = HubClient::new(port, hub.owner_token.as_deref().unwrap());
    let (_, token, wid) = client.agent_with_webhook().await;

    // Some delivered and left unacked.
    let unacked = post_streams(&client, std::slice::from_ref(&wid), 1, 20).await;
    let mut sock = client.connect(&token).await;
    for _ in 0..20 {
        sock.next_delivery(10).await;
    }

    // Posts in flight when the process dies: only the 202s count.
    let accepted = std::cell::RefCell::new(Vec::new());
    let posting = stream::iter(1..9)
        .map(|s| {
            let (client, wid, accepted) = (&client, wid.clone(), &accepted);
            async move {
                for n in 0.. {
                    let body = json!({"stream": s, "n": n}).to_string();
                    let mut req = client.client.post(client.url(&format!("/v1/hooks/{wid}")));
                    for header in client.signed_headers(&wid, body.as_bytes()) {
                        req = req.insert_header(header);
                    }
                    let sent = req.send_body(body).await;
                    match sent {
                        Ok(mut resp) if resp.status().as_u16() == 202 => {
                            let v: Value = resp.json().await.unwrap_or(Value::Null);
                            match v["deliveryId"].as_str() {
                                Some(id) => accepted.borrow_mut().push(id.to_owned()),
                                None => return,
                            }
                        }
                        _ => return,
                    }
                }
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>();
    let killer = async {
        while accepted.borrow().len() < 300 {
            sleep(Duration::from_millis(5)).await;
        }
        hub.kill9();
    };
    futures_util::join!(posting, killer);
    drop(sock);
    let accepted = accepted.into_inner();
    assert!(accepted.len() >= 300);

    let hub = HubProcess::start(data.path(), port, &[]);
    assert!(hub.owner_token.is_none(), "the restart found its data");
    let mut sock = client.connect(&token).await;
    // Deliveries committed but killed before their 202 may arrive too; what must arrive
    // is every one that got a 202.
    let mut missing: HashSet<String> = unacked.keys().chain(accepted.iter()).cloned().collect();
    let mut last: HashMap<u64, u64> = HashMap::new();
    while !missing.is_empty() {
        let d = match sock.next_incoming(20).await {
            Some(Incoming::Json(d)) => d,
            _ => panic!("{} deliveries answered 202 never arrived", missing.len()),
        };
        let id = d["deliveryId"].as_str().unwrap().to_owned();
        sock.ack(&id).await;
        let body: Value = serde_json::from_str(d["body"].as_str().unwrap()).unwrap();
        let (s, n) = (
            body["stream"].as_u64().unwrap(),
            body["n"].as_u64().unwrap(),
        );
        if let Some(prev) = last.insert(s, n) {
            assert!(n > prev, "stream {s} out of order after restart");
        }
        missing.remove(&id);
    }
    drop(hub);
}

/// Sets the soft limit on the size of any file the process writes (RLIMIT_FSIZE); the
/// hard limit stays unlimited, so it can be raised again.
fn limit_file_size(pid: u32, soft: &str) {
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--fsize={soft}:unlimited"),
        ])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(status.success(), "prlimit {soft} failed");
}

/// Posts body number `n` of `len` bytes; when it is accepted, remembers its id and body.
async fn post_numbered(
    client: &HubClient,
    wid: &str,
    n: &mut usize,
    len: usize,
    accepted: &mut Vec<(String, String)>,
) -> crate::harness::Resp {
    let mut body = format!("{n:06}:");
    body.extend(std::iter::repeat_n('x', len - body.len()));
    *n += 1;
    let r = client.ingest_signed(wid, body.clone(), &[]).await;
    if r.status == 202 {
        accepted.push((r.json["deliveryId"].as_str().unwrap().to_owned(), body));
    }
    r
}

/// The real binary on a disk that fills up (a file-size limit, which SQLite meets as
/// "database or disk is full"): ingest answers 503 saying the delivery was not stored,
/// `/healthz` says the hub cannot write, and once there is room again the hub recovers on
/// its own, with every delivery it accepted intact.
#[actix_web::test]
async fn a_full_disk_answers_503_and_the_hub_recovers_when_there_is_room() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("hub.log");
    let port = free_port();
    let hub = HubProcess::start_with(
        data.path(),
        port,
        &[],
        std::fs::File::create(&log_path).unwrap().into(),
        "info",
    );
    let client = HubClient::new(port, hub.owner_token.as_deref().unwrap());
    let (_, token, wid) = client.agent_with_webhook().await;
    let healthz = async || client.request("GET", "/healthz", None, None).await;
    assert_eq!(healthz().await.status, 200);

    let largest = ["hookhub.db", "hookhub.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.path().join(f)).ok())
        .map(|m| m.len())
        .max()
        .unwrap();
    limit_file_size(hub.pid(), &(largest + (4 << 20)).to_string());

    let (mut n, mut accepted) = (0, Vec::new());
    let full = loop {
        let r = post_numbered(&client, &wid, &mut n, 256 * 1024, &mut accepted).await;
        match r.status {
            202 => assert!(n < 500, "still accepting past the limit"),
            _ => break r,
        }
    };
    assert_eq!(full.status, 503, "{:?}", full.json);
    assert_eq!(full.json["error"]["code"], "storage_unavailable");
    assert_eq!(
        full.json["error"]["message"],
        "the delivery could not be stored; retry"
    );
    assert!(full.retry_after_secs() > 0);

    // A large write that failed can leave room for small ones, and a checkpoint under way
    // can make some: the hub is full once a small post fails and /healthz, which tries a
    // small write of its own when writes have been failing, agrees.
    let mut unhealthy = None;
    for _ in 0..2000 {
        let r = post_numbered(&client, &wid, &mut n, 1024, &mut accepted).await;
        if r.status == 202 {
            continue;
        }
        assert_eq!(r.status, 503, "{:?}", r.json);
        assert_eq!(r.json["error"]["code"], "storage_unavailable");
        let h = healthz().await;
        if h.status != 200 {
            unhealthy = Some(h);
            break;
        }
    }
    let h = unhealthy.expect("/healthz never said that writes fail");
    assert_eq!(h.status, 503, "{:?}", h.json);
    assert_eq!(h.json["status"], "unavailable");
    let reason = h.json["reason"].as_str().unwrap();
    assert!(reason.starts_with("writes are failing: "), "{reason}");
    assert!(
        !reason.contains("whsec_") && !reason.contains("hh_"),
        "{reason}"
    );
    // Asked again, with nothing else written meanwhile, it tries again: still full. Each
    // try is a failed write, and so is each post; the log says so once, not each time.
    for _ in 0..20 {
        assert_eq!(healthz().await.status, 503);
        // A checkpoint can free room in the WAL now and then.
        let r = post_numbered(&client, &wid, &mut n, 256 * 1024, &mut accepted).await;
        assert!(matches!(r.status, 202 | 503), "{:?}", r.json);
    }
    let log = std::fs::read_to_string(&log_path).unwrap();
    let errors = log.lines().filter(|l| l.contains("ERROR")).count();
    assert!(errors <= 2, "{errors} ERROR lines for one outage:\n{log}");

    limit_file_size(hub.pid(), "unlimited");
    let mut recovered = false;
    for _ in 0..100 {
        if healthz().await.status == 200 {
            recovered = true;
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "/healthz still 503 with room to write");
    let r = post_numbered(&client, &wid, &mut n, 256 * 1024, &mut accepted).await;
    assert_eq!(r.status, 202, "{:?}", r.json);

    // Everything accepted, in order and byte for byte; nothing answered 503 among it.
    let mut sock = client.connect(&token).await;
    for (id, body) in &accepted {
        let d = sock.next_delivery(20).await;
        assert_eq!(d["deliveryId"], id.as_str());
        assert!(d["body"] == body.as_str(), "the body of {id} changed");
        sock.ack(id).await;
    }
    drop(hub);
}

#[actix_web::test]
async fn sigterm_stops_the_binary_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut hub = HubProcess::start(data.path(), port, &[]);
    let client = HubClient::new(port, hub.owner_token.as_deref().unwrap());
    let (_, token, wid) = client.agent_with_webhook().await;
    let mut sock = client.connect(&token).await;
    let id = client.ingest_signed(&wid, "x", &[]).await.json["deliveryId"].clone();
    assert_eq!(sock.next_delivery(5).await["deliveryId"], id);
    let exited = std::thread::spawn(move || hub.terminate());
    match sock.next_incoming(10).await {
        Some(Incoming::Close(Some(reason))) => assert_eq!(u16::from(reason.code), 1001),
        _ => panic!("no 1001 close on SIGTERM"),
    }
    assert!(exited.join().unwrap(), "exit status 0 after SIGTERM");
}

#[actix_web::test]
async fn a_slow_agent_gets_no_more_than_its_window() {
    let app = spawn_app_with(|c| c.window = 10).await;
    let (_, token, wid) = app.agent_with_webhook().await;
    let mut sock = app.connect(&token).await;
    post_streams(&app, std::slice::from_ref(&wid), 1, 50).await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(
            sock.next_delivery(5).await["deliveryId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert!(
        sock.next_incoming(1).await.is_none(),
        "sent past the window"
    );
    // Each ack opens one slot.
    sock.ack(&ids[0]).await;
    let d = sock.next_delivery(5).await;
    assert!(!ids.contains(&d["deliveryId"].as_str().unwrap().to_owned()));
    assert!(sock.next_incoming(1).await.is_none());
}

#[actix_web::test]
async fn a_silent_socket_is_dropped_and_the_agent_goes_offline() {
    let app = spawn_app_with(|c| {
        c.heartbeat = Duration::from_millis(100);
        c.client_timeout = Duration::from_millis(600);
    })
    .await;
    let (_, token) = app.create_agent("bot").await;
    // Connected, but never reads, so never answers a ping.
    let _sock = app.connect(&token).await;
    sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.get("/v1/agents", &app.owner_token).await.json["agents"][0]["connected"],
        true
    );
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        app.get("/v1/agents", &app.owner_token).await.json["agents"][0]["connected"],
        false
    );
}

#[actix_web::test]
async fn a_socket_that_answers_pings_stays_up() {
    let app = spawn_app_with(|c| {
        c.heartbeat = Duration::from_millis(100);
        c.client_timeout = Duration::from_millis(600);
    })
    .await;
    let (_, token, wid) = app.agent_with_webhook().await;
    let mut sock = app.connect(&token).await;
    // Reading answers pings; nothing else arrives for well past the client timeout.
    match sock.next_incoming(2).await {
        None => {}
        Some(Incoming::Json(v)) => panic!("unexpected frame {v}"),
        Some(Incoming::Close(r)) => panic!("closed: {r:?}"),
        Some(Incoming::Ended) => panic!("ended"),
    }
    let id = app.ingest_signed(&wid, "alive", &[]).await.json["deliveryId"].clone();
    assert_eq!(sock.next_delivery(5).await["deliveryId"], id);
}

/// The backlog is bounded in bytes as well as in count: unsigned megabyte bodies posted
/// to a webhook that accepts them (a Stripe one before its secret is set) fill it to the
/// byte cap and no further, and acking makes room again.
#[actix_web::test]
async fn the_backlog_is_capped_in_bytes_too() {
    let app = spawn_app_with(|c| c.backlog_bytes = 3 * 1024 * 1024).await;
    let (agent, token) = app.create_agent("bot").await;
    let wh = app
        .create_webhook(&app.owner_token, &agent, "stripe", "stripe")
        .await;
    let wid = wh["webhookId"].as_str().unwrap();
    let body = |n: usize| format!("{{\"id\":\"evt_{n}\",\"pad\":\"{}\"}}", "x".repeat(1 << 20));
    let mut statuses = Vec::new();
    for n in 0..5 {
        statuses.push(app.ingest(wid, body(n), &[]).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status).collect();
    assert_eq!(
        codes,
        [202, 202, 503, 503, 503],
        "two of about 1 MiB fit in 3 MiB"
    );
    assert_eq!(statuses[2].json["error"]["code"], "backlog_full");
    assert!(statuses[2].retry_after_secs() >= 1);

    let mut sock = app.connect(&token).await;
    let d = sock.next_delivery(10).await;
    sock.ack(d["deliveryId"].as_str().unwrap()).await;
    let mut accepted = false;
    for _ in 0..100 {
        if app.ingest(wid, body(9), &[]).await.status == 202 {
            accepted = true;
            break;
        }
        sleep(Duration::from_millis(50)).await;
    }
    assert!(accepted, "an ack makes room in bytes");
}
