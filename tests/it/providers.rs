//! Providers at ingest, end to end: signature schemes, rejections in the activity,
//! rotation overlap, dedupe, Slack's handshake and the rate limit, over the real server
//! and the agent's real socket.
//!
//! Senders' signatures are made here independently of the hub's code: with the
//! `standardwebhooks` crate (the Standard Webhooks reference library) for generic posts, and
//! by each provider's documented recipe for the others. What the agent receives is checked
//! with the reference library too.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{
    senders::{github_signature, hmac_hex, now_secs},
    spawn_app, spawn_app_with, AgentSocket, Resp, TestApp,
};

/// Stripe's recipe: `t=<unix>,v1=<hex HMAC-SHA256("{t}.{body}")>`.
fn stripe_signature(secret: &str, t: i64, body: &str) -> String {
    let v1 = hmac_hex(secret.as_bytes(), format!("{t}.{body}").as_bytes());
    format!("t={t},v1={v1}")
}

/// Slack's recipe: `v0=` + hex HMAC-SHA256 of `"v0:{ts}:{body}"`.
fn slack_signature(secret: &str, ts: i64, body: &str) -> String {
    format!(
        "v0={}",
        hmac_hex(secret.as_bytes(), format!("v0:{ts}:{body}").as_bytes())
    )
}

/// Standard Webhooks headers, signed by the reference library.
fn standard_headers(secret: &str, id: &str, ts: i64, body: &str) -> Vec<(String, String)> {
    let sig = standardwebhooks::Webhook::new(secret)
        .unwrap()
        .sign(id, ts, body.as_bytes())
        .unwrap();
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        ("webhook-signature".into(), sig),
    ]
}

/// Whether a delivery frame's `signature` verifies for `secret` with the reference library.
fn frame_verifies(frame: &Value, secret: &str) -> bool {
    let sig = &frame["signature"];
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let value = sig[name].as_str().expect("signature header in the frame");
        headers.insert(name, value.parse().unwrap());
    }
    assert_eq!(frame["bodyEncoding"], "utf8");
    let body = frame["body"].as_str().unwrap();
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(body.as_bytes(), &headers)
        .is_ok()
}

async fn post(app: &TestApp, wid: &str, body: &str, headers: &[(String, String)]) -> Resp {
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    app.ingest(wid, body.to_owned(), &refs).await
}

/// Posts as a Standard Webhooks sender does: signed now with `secret`, as message `id`.
async fn post_standard(app: &TestApp, wid: &str, secret: &str, id: &str, body: &str) -> Resp {
    post(
        app,
        wid,
        body,
        &standard_headers(secret, id, now_secs(), body),
    )
    .await
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A webhook ready to receive: `(agentId, agentToken, webhookId, signingSecret)`.
async fn webhook(app: &TestApp, provider: &str) -> (String, String, String, String) {
    let (agent, token) = app.create_agent("bot").await;
    let wh = app
        .create_webhook(&app.owner_token, &agent, provider, provider)
        .await;
    (
        agent,
        token,
        wh["webhookId"].as_str().unwrap().to_owned(),
        wh["signingSecret"].as_str().unwrap().to_owned(),
    )
}

async fn set_provider_secret(app: &TestApp, agent: &str, wid: &str, secret: &str) {
    let r = app
        .request(
            "PUT",
            &format!("/v1/agents/{agent}/webhooks/{wid}/provider-secret"),
            Some(&app.owner_token),
            Some(json!({ "secret": secret })),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.json);
}

/// The webhook's activity, newest first.
fn assert_invalid_signature(r: &Resp, what: &str) {
    assert_eq!(r.status, 401, "{what}: {:?}", r.json);
    assert_eq!(r.json["error"]["code"], "invalid_signature", "{what}");
    assert!(
        !r.json["error"]["message"].as_str().unwrap().is_empty(),
        "{what}: a reason is given"
    );
}

/// The next delivery, acked.
async fn receive(sock: &mut AgentSocket) -> Value {
    let d = sock.next_delivery(10).await;
    sock.ack(d["deliveryId"].as_str().unwrap()).await;
    d
}

#[actix_web::test]
async fn a_signed_github_post_arrives_verified_and_its_frame_verifies_as_standard_webhooks() {
    let app = spawn_app().await;
    let (_, token, wid, secret) = webhook(&app, "github").await;
    let mut sock = app.connect(&token).await;

    let body = r#"{"zen":"Design for failure.","hook_id":1}"#;
    let r = post(
        &app,
        &wid,
        body,
        &h(&[
            ("X-GitHub-Event", "ping"),
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("X-Hub-Signature-256", &github_signature(&secret, body)),
            ("Content-Type", "application/json"),
        ]),
    )
    .await;
    assert_eq!(r.status, 202, "{:?}", r.json);

    let d = receive(&mut sock).await;
    assert_eq!(d["deliveryId"], r.json["deliveryId"]);
    assert_eq!(d["verified"], true);
    assert_eq!(d["provider"], "github");
    assert_eq!(d["event"], "ping");
    assert_eq!(d["body"], body);
    assert!(frame_verifies(&d, &secret));
    assert!(!frame_verifies(
        &d,
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    ));
}

#[actix_web::test]
async fn a_generic_post_signed_by_the_reference_library_arrives_verified() {
    let app = spawn_app().await;
    let (_, token, wid, secret) = webhook(&app, "generic").await;
    let mut sock = app.connect(&token).await;

    let body = r#"{"type":"invoice.paid","data":{"amount":100}}"#;
    let r = post_standard(&app, &wid, &secret, "msg_2Kx1", body).await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let d = receive(&mut sock).await;
    assert_eq!(d["verified"], true);
    assert_eq!(d["event"], "invoice.paid");
    assert!(frame_verifies(&d, &secret));
}

#[actix_web::test]
async fn tampered_stale_wrongly_keyed_and_garbage_requests_get_401_and_a_rejected_row() {
    let app = spawn_app().await;
    let (agent, token, wid, secret) = webhook(&app, "generic").await;
    let mut sock = app.connect(&token).await;
    let body = r#"{"type":"order.created","n":1}"#;
    let now = now_secs();

    let mut tampered = standard_headers(&secret, "msg_a", now, body);
    let r = post(&app, &wid, r#"{"type":"order.created","n":2}"#, &tampered).await;
    assert_invalid_signature(&r, "tampered body");
    assert!(r.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("matches"));

    let stale = standard_headers(&secret, "msg_b", now - 301, body);
    let r = post(&app, &wid, body, &stale).await;
    assert_invalid_signature(&r, "stale timestamp");
    assert!(r.json["error"]["message"].as_str().unwrap().contains("old"));

    let wrong = standard_headers("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_c", now, body);
    let r = post(&app, &wid, body, &wrong).await;
    assert_invalid_signature(&r, "wrong secret");

    tampered[2].1 = "v1,not base64 at all!!".to_owned();
    let r = post(&app, &wid, body, &tampered).await;
    assert_invalid_signature(&r, "garbage header");

    let r = post(&app, &wid, body, &[]).await;
    assert_invalid_signature(&r, "no headers");

    // Every refusal is in the activity with its reason, unverified, and none was queued.
    let rows = app.activity(&agent, &wid).await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    for row in &rows {
        assert_eq!(row["status"], "rejected", "{row}");
        assert_eq!(row["verified"], false);
        assert!(!row["reason"].as_str().unwrap().is_empty(), "{row}");
    }
    assert!(rows[0]["reason"]
        .as_str()
        .unwrap()
        .contains("webhook-id header is missing"));
    assert!(rows[3]["reason"].as_str().unwrap().contains("old"));

    // Nothing reached the agent: the next frame is the first good post.
    let good = standard_headers(&secret, "msg_d", now, body);
    let r = post(&app, &wid, body, &good).await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let d = receive(&mut sock).await;
    assert_eq!(d["deliveryId"], r.json["deliveryId"]);
}

#[actix_web::test]
async fn every_provider_refuses_malformed_signature_headers_with_401() {
    let app = spawn_app().await;
    let (_, token, _, _) = webhook(&app, "generic").await;
    let mut ids = Vec::new();
    for provider in ["github", "stripe", "slack", "generic"] {
        let wh = app.create_webhook(&token, "me", provider, provider).await;
        let wid = wh["webhookId"].as_str().unwrap().to_owned();
        if provider == "stripe" || provider == "slack" {
            let r = app
                .request(
                    "PUT",
                    &format!("/v1/agents/me/webhooks/{wid}/provider-secret"),
                    Some(&token),
                    Some(json!({ "secret": "provider-issued-secret" })),
                )
                .await;
            assert_eq!(r.status, 204);
        }
        ids.push((provider, wid));
    }
    let ts = now_secs().to_string();
    let huge = "9".repeat(40);
    let huge_t = format!("t={huge},v1=00");
    let bad_hex = format!("t={ts},v1=zz");
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("github", vec![]),
        ("github", vec![("X-Hub-Signature-256", "sha256=xyz")]),
        ("github", vec![("X-Hub-Signature-256", "md5=abc")]),
        ("github", vec![("X-Hub-Signature-256", "")]),
        ("stripe", vec![]),
        ("stripe", vec![("Stripe-Signature", "garbage")]),
        ("stripe", vec![("Stripe-Signature", "t=,v1=,v0=")]),
        ("stripe", vec![("Stripe-Signature", &huge_t)]),
        ("stripe", vec![("Stripe-Signature", &bad_hex)]),
        ("slack", vec![]),
        (
            "slack",
            vec![
                ("X-Slack-Request-Timestamp", "yesterday"),
                ("X-Slack-Signature", "v0=00"),
            ],
        ),
        (
            "slack",
            vec![
                ("X-Slack-Request-Timestamp", &ts),
                ("X-Slack-Signature", "v0"),
            ],
        ),
        (
            "slack",
            vec![
                ("X-Slack-Request-Timestamp", &huge),
                ("X-Slack-Signature", "v0=00"),
            ],
        ),
        (
            "generic",
            vec![
                ("webhook-id", "x"),
                ("webhook-timestamp", "-1"),
                ("webhook-signature", "v1,AA=="),
            ],
        ),
        (
            "generic",
            vec![
                ("webhook-id", "x"),
                ("webhook-timestamp", &ts),
                ("webhook-signature", "v1,"),
            ],
        ),
        (
            "generic",
            vec![
                ("webhook-id", "x"),
                ("webhook-timestamp", &ts),
                ("webhook-signature", ",,, v1"),
            ],
        ),
    ];
    for (provider, headers) in cases {
        let wid = &ids.iter().find(|(p, _)| *p == provider).unwrap().1;
        let r = app
            .ingest(wid, r#"{"type":"x","id":"evt_1"}"#, &headers)
            .await;
        assert_invalid_signature(&r, &format!("{provider} {headers:?}"));
    }
}

#[actix_web::test]
async fn the_previous_secret_verifies_inside_the_overlap_and_not_after() {
    let overlap = Duration::from_secs(3);
    let app = spawn_app_with(|c| c.rotation_overlap = overlap).await;
    let (agent, token, wid, old) = webhook(&app, "github").await;
    let mut sock = app.connect(&token).await;
    let r = app
        .post(
            &format!("/v1/agents/{agent}/webhooks/{wid}/rotate"),
            &app.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let new = r.json["signingSecret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);

    let body = r#"{"ref":"refs/heads/main"}"#;
    let signed_with = |secret: &str| {
        h(&[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", &github_signature(secret, body)),
        ])
    };

    // Inside the overlap both secrets verify, and the frame carries a signature for each.
    let r = post(&app, &wid, body, &signed_with(&old)).await;
    assert_eq!(r.status, 202, "old secret inside the overlap: {:?}", r.json);
    let d = receive(&mut sock).await;
    assert_eq!(d["verified"], true);
    assert!(frame_verifies(&d, &old));
    assert!(frame_verifies(&d, &new));
    let r = post(&app, &wid, body, &signed_with(&new)).await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    receive(&mut sock).await;

    actix_web::rt::time::sleep(overlap + Duration::from_millis(300)).await;

    let r = post(&app, &wid, body, &signed_with(&old)).await;
    assert_invalid_signature(&r, "old secret after the overlap");
    let r = post(&app, &wid, body, &signed_with(&new)).await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let d = receive(&mut sock).await;
    assert_eq!(d["deliveryId"], r.json["deliveryId"]);
    assert!(frame_verifies(&d, &new));
    assert!(!frame_verifies(&d, &old));

    let rows = app.activity(&agent, &wid).await;
    let statuses: Vec<&str> = rows.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "rejected").count(),
        1,
        "{statuses:?}"
    );
}

#[actix_web::test]
async fn a_duplicate_is_answered_with_the_original_id_and_not_delivered_twice() {
    let app = spawn_app().await;
    let (agent, token, wid, secret) = webhook(&app, "generic").await;
    let mut sock = app.connect(&token).await;
    let body = r#"{"type":"user.created"}"#;

    let first = post_standard(&app, &wid, &secret, "msg_same", body).await;
    assert_eq!(first.status, 202, "{:?}", first.json);
    // The sender's retry: same webhook-id, fresh timestamp and signature.
    let again = post_standard(&app, &wid, &secret, "msg_same", body).await;
    assert!((200..300).contains(&again.status), "{:?}", again.json);
    assert_eq!(again.json["deliveryId"], first.json["deliveryId"]);
    let other = post_standard(&app, &wid, &secret, "msg_other", body).await;
    assert_eq!(other.status, 202);

    assert_eq!(
        receive(&mut sock).await["deliveryId"],
        first.json["deliveryId"]
    );
    assert_eq!(
        receive(&mut sock).await["deliveryId"],
        other.json["deliveryId"]
    );

    let rows = app.activity(&agent, &wid).await;
    let statuses: Vec<&str> = rows.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    assert_eq!(rows[1]["status"], "duplicate");
}

#[actix_web::test]
async fn stripe_verifies_with_the_provider_secret_dedupes_by_event_id_and_accepts_unverified_before_it_is_set(
) {
    let app = spawn_app().await;
    let (agent, token, wid, signing) = webhook(&app, "stripe").await;
    let mut sock = app.connect(&token).await;
    let body = r#"{"id":"evt_1PqX","object":"event","type":"checkout.session.completed"}"#;

    // No provider secret yet: accepted, marked unverified.
    let r = post(
        &app,
        &wid,
        body,
        &h(&[(
            "Stripe-Signature",
            &stripe_signature("whsec_x", now_secs(), body),
        )]),
    )
    .await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let d = receive(&mut sock).await;
    assert_eq!(d["verified"], false);
    assert_eq!(d["event"], "checkout.session.completed");

    let stripe_secret = "whsec_stripe_issued_0123456789";
    set_provider_secret(&app, &agent, &wid, stripe_secret).await;
    let body = r#"{"id":"evt_2AbC","object":"event","type":"invoice.paid"}"#;
    // Several v1 (as during Stripe's own secret roll) and a v0: one v1 matching is enough.
    let t = now_secs();
    let header = format!(
        "t={t},v1={},{},v0={}",
        "0".repeat(64),
        stripe_signature(stripe_secret, t, body)
            .split_once(',')
            .unwrap()
            .1,
        "f".repeat(64)
    );
    let r = post(&app, &wid, body, &h(&[("Stripe-Signature", &header)])).await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let d = receive(&mut sock).await;
    assert_eq!(d["verified"], true);
    assert_eq!(d["event"], "invoice.paid");
    // What the agent gets is signed with the webhook's own signing secret.
    assert!(frame_verifies(&d, &signing));

    // Stripe's retry of the same event is a duplicate.
    let again = post(
        &app,
        &wid,
        body,
        &h(&[(
            "Stripe-Signature",
            &stripe_signature(stripe_secret, now_secs(), body),
        )]),
    )
    .await;
    assert_eq!(again.status, 200, "{:?}", again.json);
    assert_eq!(again.json["deliveryId"], r.json["deliveryId"]);

    // Now that a secret is set, an unsigned or stale request is refused.
    let r = post(
        &app,
        &wid,
        body,
        &h(&[(
            "Stripe-Signature",
            &stripe_signature(stripe_secret, now_secs() - 301, body),
        )]),
    )
    .await;
    assert_invalid_signature(&r, "stale stripe");
    let r = post(
        &app,
        &wid,
        body,
        &h(&[(
            "Stripe-Signature",
            &stripe_signature(&signing, now_secs(), body),
        )]),
    )
    .await;
    assert_invalid_signature(&r, "stripe signed with the hub's signing secret");

    let fresh = r#"{"id":"evt_3","type":"charge.refunded"}"#;
    let r = post(
        &app,
        &wid,
        fresh,
        &h(&[(
            "Stripe-Signature",
            &stripe_signature(stripe_secret, now_secs(), fresh),
        )]),
    )
    .await;
    assert_eq!(r.status, 202);
    assert_eq!(receive(&mut sock).await["deliveryId"], r.json["deliveryId"]);
}

#[actix_web::test]
async fn slack_challenge_is_echoed_after_its_signature_checks_and_never_queued() {
    let app = spawn_app().await;
    let (agent, token, wid, _) = webhook(&app, "slack").await;
    let slack_secret = "8f742231b10e8888abcd99yyyzzz85a5";
    set_provider_secret(&app, &agent, &wid, slack_secret).await;
    let mut sock = app.connect(&token).await;

    let challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P";
    let body = format!(
        r#"{{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"{challenge}","type":"url_verification"}}"#
    );
    let ts = now_secs();
    let signed = h(&[
        ("X-Slack-Request-Timestamp", &ts.to_string()),
        (
            "X-Slack-Signature",
            &slack_signature(slack_secret, ts, &body),
        ),
        ("Content-Type", "application/json"),
    ]);
    let r = post(&app, &wid, &body, &signed).await;
    assert_eq!(r.status, 200, "{:?}", r.raw);
    assert_eq!(r.json["challenge"], challenge);

    // A forged handshake is refused like any request.
    let forged = h(&[
        ("X-Slack-Request-Timestamp", &ts.to_string()),
        (
            "X-Slack-Signature",
            &slack_signature("not-the-secret", ts, &body),
        ),
    ]);
    let r = post(&app, &wid, &body, &forged).await;
    assert_invalid_signature(&r, "forged challenge");

    // An event is delivered, verified, named by its inner type; its retry is a duplicate.
    let event = r#"{"type":"event_callback","event_id":"Ev08MFMKH6","event":{"type":"app_mention","text":"hi"}}"#;
    let ts = now_secs();
    let signed = h(&[
        ("X-Slack-Request-Timestamp", &ts.to_string()),
        (
            "X-Slack-Signature",
            &slack_signature(slack_secret, ts, event),
        ),
    ]);
    let r = post(&app, &wid, event, &signed).await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let mut retry = signed.clone();
    retry.push(("X-Slack-Retry-Num".into(), "1".into()));
    let again = post(&app, &wid, event, &retry).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json["deliveryId"], r.json["deliveryId"]);

    // The first frame the agent sees is the event: the handshake was never queued.
    let d = receive(&mut sock).await;
    assert_eq!(d["deliveryId"], r.json["deliveryId"]);
    assert_eq!(d["verified"], true);
    assert_eq!(d["event"], "app_mention");
    // The activity holds the forged handshake (rejected), the event and its duplicate;
    // the genuine handshake is not a delivery at all.
    let rows = app.activity(&agent, &wid).await;
    let seen: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["status"].as_str().unwrap(), r["event"].as_str().unwrap()))
        .collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0], ("duplicate", "app_mention"));
    assert_eq!(seen[1].1, "app_mention");
    assert_eq!(seen[2], ("rejected", "url_verification"));
}

#[actix_web::test]
async fn slack_without_a_provider_secret_answers_the_challenge_and_delivers_unverified() {
    let app = spawn_app().await;
    let (_, token, wid, _) = webhook(&app, "slack").await;
    let mut sock = app.connect(&token).await;
    let r = post(
        &app,
        &wid,
        r#"{"type":"url_verification","challenge":"abc"}"#,
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["challenge"], "abc");
    let r = post(
        &app,
        &wid,
        r#"{"type":"event_callback","event":{"type":"message"}}"#,
        &[],
    )
    .await;
    assert_eq!(r.status, 202);
    let d = receive(&mut sock).await;
    assert_eq!(d["deliveryId"], r.json["deliveryId"]);
    assert_eq!(d["verified"], false);
    assert_eq!(d["event"], "message");
}

#[actix_web::test]
async fn past_the_rate_limit_ingest_answers_429_with_retry_after_and_stores_nothing() {
    let app = spawn_app_with(|c| {
        c.rate_limit = 0.01;
        c.rate_burst = 2;
    })
    .await;
    let (agent, token, wid, secret) = webhook(&app, "generic").await;
    let body = r#"{"type":"t"}"#;
    for n in 0..2 {
        let r = post_standard(&app, &wid, &secret, &format!("msg_{n}"), body).await;
        assert_eq!(r.status, 202, "{:?}", r.json);
    }
    let r = post_standard(&app, &wid, &secret, "msg_2", body).await;
    assert_eq!(r.status, 429, "{:?}", r.json);
    assert_eq!(r.json["error"]["code"], "rate_limited");
    let retry_after = r.retry_after_secs();
    // One token per 100 s, and the bucket was just emptied.
    assert!((1..=100).contains(&retry_after), "{retry_after}");
    // An unsigned request is limited too, before it could be recorded as rejected.
    let r = post(&app, &wid, body, &[]).await;
    assert_eq!(r.status, 429);
    assert_eq!(app.activity(&agent, &wid).await.len(), 2);

    // Another webhook has a bucket of its own.
    let other = app.create_webhook(&token, "me", "other", "generic").await;
    let other_id = other["webhookId"].as_str().unwrap();
    let other_secret = other["signingSecret"].as_str().unwrap();
    let r = post_standard(&app, other_id, other_secret, "msg_0", body).await;
    assert_eq!(r.status, 202, "{:?}", r.json);
}

/// A session that signed frames before a rotation signs the next ones with the new secret
/// (and the old one, during the overlap), not with what it had opened before.
#[actix_web::test]
async fn frames_after_a_rotation_are_signed_with_the_new_secret() {
    let app = spawn_app().await;
    let (agent, token, wid, old) = webhook(&app, "github").await;
    let mut sock = app.connect(&token).await;
    let body = r#"{"n":1}"#;
    let push = |secret: String| {
        let app = &app;
        let wid = wid.clone();
        async move {
            let r = post(
                app,
                &wid,
                body,
                &h(&[("X-Hub-Signature-256", &github_signature(&secret, body))]),
            )
            .await;
            assert_eq!(r.status, 202, "{:?}", r.json);
        }
    };
    push(old.clone()).await;
    let before = receive(&mut sock).await;
    assert!(frame_verifies(&before, &old));

    let rotated = app
        .post(
            &format!("/v1/agents/{agent}/webhooks/{wid}/rotate"),
            &app.owner_token,
            serde_json::json!({}),
        )
        .await;
    let new = rotated.json["signingSecret"].as_str().unwrap().to_owned();
    push(new.clone()).await;
    let after = receive(&mut sock).await;
    assert!(frame_verifies(&after, &new), "signed with the new secret");
    assert!(
        frame_verifies(&after, &old),
        "and the old one during the overlap"
    );
}

/// Anyone who knows a webhook's URL can post to it. Forged requests with megabyte bodies
/// keep only what an owner needs to debug them, so they cannot fill the disk: here the
/// hub's files may not grow past 48 MiB while 160 MiB of forged bodies arrive, and the
/// real sender's delivery still goes through.
#[actix_web::test]
async fn a_flood_of_forged_requests_stores_little_and_never_crowds_out_the_real_sender() {
    use crate::harness::process::{dir_size, free_port, HubProcess};
    use futures_util::StreamExt;
    use sha2::Digest;

    let dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::start_under(
        &["prlimit", "--fsize=50331648"],
        dir.path(),
        free_port(),
        &[],
        std::process::Stdio::null(),
        "info",
    );
    let client = crate::harness::HubClient::new(hub.port, hub.owner_token.as_deref().unwrap());
    let (agent, token) = client.create_agent("bot").await;
    let wh = client
        .create_webhook(&client.owner_token, &agent, "gh", "github")
        .await;
    let wid = wh["webhookId"].as_str().unwrap().to_owned();
    let secret = wh["signingSecret"].as_str().unwrap().to_owned();
    let before = dir_size(dir.path());

    let forged = "f".repeat(1 << 20);
    let statuses: Vec<u16> = futures_util::stream::iter(0..160)
        .map(|i| {
            let (client, wid, forged) = (&client, &wid, &forged);
            async move {
                let delivery = format!("forged-{i}");
                client
                    .ingest(
                        wid,
                        forged.clone(),
                        &[
                            ("X-GitHub-Event", "push"),
                            ("X-GitHub-Delivery", &delivery),
                            ("X-Hub-Signature-256", &format!("sha256={}", "0".repeat(64))),
                        ],
                    )
                    .await
                    .status
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let grown = dir_size(dir.path()).saturating_sub(before);
    assert!(grown < 8 << 20, "the data directory grew by {grown} bytes");

    let body = r#"{"ref":"refs/heads/main"}"#;
    let r = client
        .ingest(
            &wid,
            body,
            &[
                ("X-GitHub-Event", "push"),
                ("X-GitHub-Delivery", "real-1"),
                ("X-Hub-Signature-256", &github_signature(&secret, body)),
            ],
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let mut sock = client.connect(&token).await;
    let d = sock.next_delivery(10).await;
    assert_eq!(d["body"], body);

    // What a rejected request keeps: its size and hash, and the start of its body.
    let rows = client.activity(&agent, &wid).await;
    let rejected: Vec<&Value> = rows.iter().filter(|r| r["status"] == "rejected").collect();
    assert!(
        !rejected.is_empty() && rejected.len() <= 100,
        "{}",
        rejected.len()
    );
    let row = rejected[0];
    assert_eq!(row["sizeBytes"], 1 << 20);
    assert_eq!(
        row["bodySha256"],
        hex::encode(sha2::Sha256::digest(forged.as_bytes()))
    );
    let detail = client
        .get(
            &format!(
                "/v1/agents/{agent}/webhooks/{wid}/deliveries/{}",
                row["deliveryId"].as_str().unwrap()
            ),
            &client.owner_token,
        )
        .await;
    assert_eq!(detail.status, 200);
    assert_eq!(detail.json["body"].as_str().unwrap(), &forged[..4096]);
    assert_eq!(detail.json["bodyTruncated"], true);
    assert!(detail.json["headers"]["x-github-delivery"].is_string());
}

/// However slowly they come, only the newest hundred rejected requests of a webhook stay.
#[actix_web::test]
async fn only_the_newest_rejected_requests_of_a_webhook_are_kept() {
    use sha2::Digest;
    let app = spawn_app().await;
    let (agent, _, wid, _) = webhook(&app, "github").await;
    let bad = [(
        "X-Hub-Signature-256".to_owned(),
        format!("sha256={}", "0".repeat(64)),
    )];
    // Ten a second are recorded after the first hundred: 130 take a little over 3 s.
    let mut recorded = 0;
    let mut n = 0;
    while recorded < 130 {
        n += 1;
        let r = post(&app, &wid, &format!("{{\"n\":{n}}}"), &bad).await;
        assert_eq!(r.status, 401);
        let rows = app.activity(&agent, &wid).await;
        let sent = hex::encode(sha2::Sha256::digest(format!("{{\"n\":{n}}}").as_bytes()));
        if rows.first().map(|r| r["bodySha256"].clone()) == Some(json!(sent)) {
            recorded += 1;
        } else {
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let page = app
        .get(
            &format!("/v1/agents/{agent}/webhooks/{wid}/deliveries?limit=100"),
            &app.owner_token,
        )
        .await;
    let rows = page.json["deliveries"].as_array().unwrap();
    assert_eq!(rows.len(), 100);
    assert!(rows.iter().all(|r| r["status"] == "rejected"));
    assert!(
        page.json["nextCursor"].is_null(),
        "{}",
        page.json["nextCursor"]
    );
}
