//! Test events, end to end: `hookhub trigger` (the real binary) posting each provider's
//! sample to a real hub, and `POST …/test-event`, the dashboard's "Send test event", with
//! its ownership rules. What the hub says of each (verified or not, the event type,
//! rejected) is read where an agent or an owner reads it: the agent's socket and the
//! activity.

use std::process::{Command, Output};

use serde_json::{json, Value};

use crate::harness::{spawn_app, wait_status, AgentSocket, Resp, TestApp};

/// Runs `hookhub trigger ARGS…` with `secret`, if any, in HOOKHUB_WEBHOOK_SECRET (and
/// nothing inherited there), off this thread: the hub under test runs on it.
async fn trigger(args: &[&str], secret: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookhub"));
    command
        .arg("trigger")
        .args(args)
        .env_remove("HOOKHUB_WEBHOOK_SECRET");
    if let Some(secret) = secret {
        command.env("HOOKHUB_WEBHOOK_SECRET", secret);
    }
    actix_web::rt::task::spawn_blocking(move || command.output().expect("hookhub runs"))
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The delivery id of a `202 {"deliveryId":…}` line on stdout; fails on anything else.
fn queued_id(out: &Output) -> String {
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}; stdout {stdout}; stderr {}",
        out.status,
        text(&out.stderr)
    );
    let answer = stdout
        .trim_end()
        .strip_prefix("202 ")
        .unwrap_or_else(|| panic!("not a 202 answer: {stdout:?}"));
    let answer: Value = serde_json::from_str(answer).unwrap();
    answer["deliveryId"].as_str().unwrap().to_owned()
}

/// A webhook of `provider` for `agent`, with `provider_secret` set if given: its id, URL
/// and signing secret.
async fn webhook(
    app: &TestApp,
    agent: &str,
    provider: &str,
    provider_secret: Option<&str>,
) -> (String, String, String) {
    let wh = app
        .create_webhook(&app.owner_token, agent, provider, provider)
        .await;
    let id = wh["webhookId"].as_str().unwrap().to_owned();
    if let Some(secret) = provider_secret {
        let r = app
            .request(
                "PUT",
                &format!("/v1/agents/{agent}/webhooks/{id}/provider-secret"),
                Some(&app.owner_token),
                Some(json!({ "secret": secret })),
            )
            .await;
        assert_eq!(r.status, 204, "{:?}", r.json);
    }
    (
        id,
        wh["url"].as_str().unwrap().to_owned(),
        wh["signingSecret"].as_str().unwrap().to_owned(),
    )
}

async fn receive(socket: &mut AgentSocket) -> Value {
    let d = socket.next_delivery(10).await;
    socket.ack(d["deliveryId"].as_str().unwrap()).await;
    d
}

/// One header of a delivery frame, by its lower-case name.
fn frame_header<'a>(frame: &'a Value, name: &str) -> Option<&'a str> {
    frame["headers"][name].as_str()
}

const STRIPE_SECRET: &str = "whsec_stripe_issued_4eC39HqLyjWDarjtT1zdp7dc";
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

#[actix_web::test]
async fn trigger_sends_each_providers_event_signed_so_that_the_hub_verifies_it() {
    let app = spawn_app().await;
    let (agent, token) = app.create_agent("bot").await;
    let mut socket = app.connect(&token).await;
    // (provider, event asked for, provider secret, the header that names the event)
    let cases = [
        ("github", "issues", None, Some("x-github-event")),
        ("stripe", "charge.succeeded", Some(STRIPE_SECRET), None),
        ("slack", "message", Some(SLACK_SECRET), None),
        ("generic", "order.created", None, None),
    ];
    for (provider, event, provider_secret, event_header) in cases {
        let (wid, url, signing) = webhook(&app, &agent, provider, provider_secret).await;
        let secret = provider_secret.unwrap_or(&signing);
        let out = trigger(
            &[&url, "--provider", provider, "--event", event],
            Some(secret),
        )
        .await;
        let id = queued_id(&out);
        for stream in [&out.stdout, &out.stderr] {
            assert!(
                !text(stream).contains(secret),
                "{provider}: the secret was printed"
            );
        }

        let d = receive(&mut socket).await;
        assert_eq!(d["deliveryId"], id.as_str(), "{provider}");
        assert_eq!(d["webhookId"], wid.as_str(), "{provider}");
        assert_eq!(d["provider"], provider);
        assert_eq!(d["verified"], true, "{provider}: {d}");
        assert_eq!(d["event"], event, "{provider}");
        if let Some(name) = event_header {
            assert_eq!(frame_header(&d, name), Some(event), "{provider}");
        }
        // The body is the provider's shape for that event.
        let body: Value = serde_json::from_str(d["body"].as_str().unwrap()).unwrap();
        match provider {
            "github" => assert_eq!(body["issue"]["state"], "open", "{body}"),
            "stripe" => {
                assert_eq!(body["object"], "event");
                assert_eq!(body["data"]["object"]["object"], "charge", "{body}");
            }
            "slack" => {
                assert_eq!(body["type"], "event_callback");
                assert_eq!(body["event"]["type"], "message", "{body}");
            }
            _ => assert_eq!(body["type"], "order.created", "{body}"),
        }
        let acked = wait_status(&app, &token, &wid, &id, "acked").await;
        assert_eq!(acked["verified"], true);
    }

    // Without --event, each provider's default.
    for (provider, event, provider_secret) in [
        ("github", "push", None),
        ("stripe", "payment_intent.succeeded", Some(STRIPE_SECRET)),
        ("slack", "app_mention", Some(SLACK_SECRET)),
        ("generic", "test.event", None),
    ] {
        let (_, url, signing) = webhook(&app, &agent, provider, provider_secret).await;
        let out = trigger(
            &[&url, "--provider", provider],
            Some(provider_secret.unwrap_or(&signing)),
        )
        .await;
        let id = queued_id(&out);
        let d = receive(&mut socket).await;
        assert_eq!(d["deliveryId"], id.as_str());
        assert_eq!((&d["event"], &d["verified"]), (&json!(event), &json!(true)));
    }
}

#[actix_web::test]
async fn trigger_twice_is_two_deliveries_not_a_duplicate() {
    let app = spawn_app().await;
    let (agent, token) = app.create_agent("bot").await;
    let (wid, url, signing) = webhook(&app, &agent, "github", None).await;
    let first = queued_id(&trigger(&[&url, "--provider", "github"], Some(&signing)).await);
    let second = queued_id(&trigger(&[&url, "--provider", "github"], Some(&signing)).await);
    assert_ne!(first, second);
    for id in [&first, &second] {
        wait_status(&app, &token, &wid, id, "queued").await;
    }
}

#[actix_web::test]
async fn trigger_with_a_wrong_secret_fails_with_the_hubs_reason_and_the_request_is_rejected() {
    let app = spawn_app().await;
    let (agent, _) = app.create_agent("bot").await;
    for (provider, provider_secret, wrong) in [
        ("github", None, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("stripe", Some(STRIPE_SECRET), "whsec_another_endpoint"),
        (
            "slack",
            Some(SLACK_SECRET),
            "0000000000000000000000000000000a",
        ),
        ("generic", None, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ] {
        let (wid, url, _) = webhook(&app, &agent, provider, provider_secret).await;
        let out = trigger(&[&url, "--provider", provider], Some(wrong)).await;
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{provider}: {stderr}");
        assert!(
            stderr.contains("401 invalid_signature"),
            "{provider}: {stderr}"
        );
        assert!(text(&out.stdout).is_empty(), "{provider}");
        assert!(
            !stderr.contains(wrong),
            "{provider}: the secret was printed"
        );

        let activity = app.activity(&agent, &wid).await;
        assert_eq!(activity.len(), 1, "{provider}: {activity:?}");
        assert_eq!(activity[0]["status"], "rejected", "{provider}");
        assert_eq!(activity[0]["verified"], false, "{provider}");
    }
}

#[actix_web::test]
async fn without_a_secret_github_and_generic_refuse_and_stripe_and_slack_go_unsigned() {
    let app = spawn_app().await;
    let (agent, token) = app.create_agent("bot").await;
    for provider in ["github", "generic"] {
        let (wid, url, _) = webhook(&app, &agent, provider, None).await;
        let out = trigger(&[&url, "--provider", provider], None).await;
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{provider}");
        assert!(stderr.contains("HOOKHUB_WEBHOOK_SECRET"), "{stderr}");
        assert!(app.activity(&agent, &wid).await.is_empty(), "nothing sent");
    }
    for provider in ["stripe", "slack"] {
        // No provider secret on the webhook: taken, unverified.
        let (wid, url, _) = webhook(&app, &agent, provider, None).await;
        let out = trigger(&[&url, "--provider", provider], None).await;
        assert!(text(&out.stderr).contains("unsigned"), "{provider}");
        let id = queued_id(&out);
        let d = wait_status(&app, &token, &wid, &id, "queued").await;
        assert_eq!(d["verified"], false, "{provider}");

        // With one set, the unsigned event is refused.
        let secret = if provider == "stripe" {
            STRIPE_SECRET
        } else {
            SLACK_SECRET
        };
        let (wid, url, _) = webhook(&app, &agent, provider, Some(secret)).await;
        let out = trigger(&[&url, "--provider", provider], None).await;
        assert!(!out.status.success(), "{provider}");
        assert!(text(&out.stderr).contains("401 invalid_signature"));
        assert_eq!(app.activity(&agent, &wid).await[0]["status"], "rejected");
    }
}

#[actix_web::test]
async fn trigger_refuses_a_bad_event_type_and_says_what_a_missing_webhook_answers() {
    let app = spawn_app().await;
    let (agent, _) = app.create_agent("bot").await;
    let (wid, url, signing) = webhook(&app, &agent, "github", None).await;
    let out = trigger(
        &[&url, "--provider", "github", "--event", "two words"],
        Some(&signing),
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("event type"),
        "{}",
        text(&out.stderr)
    );
    assert!(app.activity(&agent, &wid).await.is_empty());

    let r = app
        .request(
            "DELETE",
            &format!("/v1/agents/{agent}/webhooks/{wid}"),
            Some(&app.owner_token),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let out = trigger(&[&url, "--provider", "github"], Some(&signing)).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("404 not_found"),
        "{}",
        text(&out.stderr)
    );
}

#[actix_web::test]
async fn the_help_never_shows_the_secret_in_the_environment() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let out = trigger(&["--help"], Some(secret)).await;
    let help = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(help.contains("HOOKHUB_WEBHOOK_SECRET"), "{help}");
    assert!(!help.contains(secret), "{help}");
}

// ---- POST …/test-event ----------------------------------------------------------------

fn test_event_path(agent: &str, wid: &str) -> String {
    format!("/v1/agents/{agent}/webhooks/{wid}/test-event")
}

async fn send_test_event(app: &TestApp, path: &str, token: &str, body: Option<Value>) -> Resp {
    app.request("POST", path, Some(token), body).await
}

#[actix_web::test]
async fn the_owner_and_the_agent_send_test_events_that_arrive_verified() {
    let app = spawn_app().await;
    let (agent, token) = app.create_agent("bot").await;
    let (wid, _, _) = webhook(&app, &agent, "github", None).await;
    let mut socket = app.connect(&token).await;

    // The owner, without a body: the provider's default event.
    let r = send_test_event(&app, &test_event_path(&agent, &wid), &app.owner_token, None).await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let d = receive(&mut socket).await;
    assert_eq!(d["deliveryId"], r.json["deliveryId"]);
    assert_eq!(
        (&d["event"], &d["verified"]),
        (&json!("push"), &json!(true))
    );
    assert!(frame_header(&d, "x-hub-signature-256").is_some_and(|s| s.starts_with("sha256=")));
    assert!(frame_header(&d, "user-agent").is_some_and(|s| s.starts_with("GitHub-Hookshot/")));

    // The agent itself, as `me`, with an event type.
    let r = send_test_event(
        &app,
        &test_event_path("me", &wid),
        &token,
        Some(json!({"event": "ping"})),
    )
    .await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let d = receive(&mut socket).await;
    assert_eq!(d["deliveryId"], r.json["deliveryId"]);
    assert_eq!(
        (&d["event"], &d["verified"]),
        (&json!("ping"), &json!(true))
    );
    let acked = wait_status(
        &app,
        &token,
        &wid,
        d["deliveryId"].as_str().unwrap(),
        "acked",
    )
    .await;
    assert_eq!(acked["event"], "ping");

    // A generic webhook's: Standard Webhooks, signed with its signing secret.
    let (generic, _, _) = webhook(&app, &agent, "generic", None).await;
    let r = send_test_event(
        &app,
        &test_event_path(&agent, &generic),
        &app.owner_token,
        None,
    )
    .await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let d = receive(&mut socket).await;
    assert_eq!(
        (&d["event"], &d["verified"]),
        (&json!("test.event"), &json!(true))
    );
    assert!(frame_header(&d, "webhook-signature").is_some_and(|s| s.starts_with("v1,")));

    // An event type that is not a plain name is refused, and nothing is sent.
    let r = send_test_event(
        &app,
        &test_event_path(&agent, &wid),
        &app.owner_token,
        Some(json!({"event": "<script>"})),
    )
    .await;
    assert_eq!(r.status, 400, "{:?}", r.json);
    assert_eq!(r.json["error"]["field"], "event");
    assert!(socket.next_incoming(1).await.is_none());
}

#[actix_web::test]
async fn a_webhook_not_the_callers_or_deactivated_is_not_found_as_a_missing_one_is() {
    let app = spawn_app().await;
    let (agent, token) = app.create_agent("bot").await;
    let (sibling, sibling_token) = app.create_agent("sibling").await;
    let (wid, _, _) = webhook(&app, &agent, "github", None).await;
    let missing = send_test_event(
        &app,
        &test_event_path(&agent, &format!("whk_{}", "0".repeat(26))),
        &app.owner_token,
        None,
    )
    .await;
    assert_eq!(missing.status, 404, "{:?}", missing.json);

    let other_owner = crate::harness::create_owner(&app, "someone else").await;
    for (what, path, token) in [
        (
            "a sibling agent, as me",
            test_event_path("me", &wid),
            sibling_token.as_str(),
        ),
        (
            "a sibling agent, by id",
            test_event_path(&agent, &wid),
            sibling_token.as_str(),
        ),
        (
            "the owner, under the sibling",
            test_event_path(&sibling, &wid),
            app.owner_token.as_str(),
        ),
        (
            "another owner",
            test_event_path(&agent, &wid),
            other_owner.as_str(),
        ),
    ] {
        let r = send_test_event(&app, &path, token, Some(json!({"event": "ping"}))).await;
        assert_eq!(r.status, 404, "{what}: {:?}", r.json);
        assert_eq!(
            r.raw, missing.raw,
            "{what}: byte for byte a missing webhook's"
        );
    }
    assert!(
        app.activity(&agent, &wid).await.is_empty(),
        "nothing was sent"
    );

    let r = app
        .request(
            "DELETE",
            &format!("/v1/agents/{agent}/webhooks/{wid}"),
            Some(&app.owner_token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    for (path, token) in [
        (test_event_path(&agent, &wid), app.owner_token.as_str()),
        (test_event_path("me", &wid), token.as_str()),
    ] {
        let r = send_test_event(&app, &path, token, None).await;
        assert_eq!(r.status, 404, "deactivated: {:?}", r.json);
        assert_eq!(r.raw, missing.raw);
    }
    assert!(app.activity(&agent, &wid).await.is_empty());

    // A deleted agent's webhooks are deactivated with it: not found either.
    let (kept, _, _) = webhook(&app, &sibling, "generic", None).await;
    let path = test_event_path(&sibling, &kept);
    let r = send_test_event(&app, &path, &app.owner_token, None).await;
    assert_eq!(r.status, 202, "before the agent is deleted: {:?}", r.json);
    let r = app
        .request(
            "DELETE",
            &format!("/v1/agents/{sibling}"),
            Some(&app.owner_token),
            None,
        )
        .await;
    assert!(r.status < 300, "{:?}", r.json);
    let r = send_test_event(&app, &path, &app.owner_token, None).await;
    assert_eq!(r.status, 404, "the agent deleted: {:?}", r.json);
    assert_eq!(r.raw, missing.raw);
    assert_eq!(app.activity(&sibling, &kept).await.len(), 1);
}

#[actix_web::test]
async fn a_stripe_or_slack_test_event_is_unverified_until_the_provider_secret_is_set() {
    let app = spawn_app().await;
    let (agent, token) = app.create_agent("bot").await;
    let mut socket = app.connect(&token).await;
    for (provider, secret, event) in [
        ("stripe", STRIPE_SECRET, "payment_intent.succeeded"),
        ("slack", SLACK_SECRET, "app_mention"),
    ] {
        let (wid, _, _) = webhook(&app, &agent, provider, None).await;
        let path = test_event_path(&agent, &wid);
        let r = send_test_event(&app, &path, &app.owner_token, None).await;
        assert_eq!(r.status, 202, "{provider}: {:?}", r.json);
        let d = receive(&mut socket).await;
        assert_eq!(d["deliveryId"], r.json["deliveryId"]);
        assert_eq!(
            (&d["event"], &d["verified"]),
            (&json!(event), &json!(false)),
            "{provider}"
        );

        let r = app
            .request(
                "PUT",
                &format!("/v1/agents/{agent}/webhooks/{wid}/provider-secret"),
                Some(&app.owner_token),
                Some(json!({ "secret": secret })),
            )
            .await;
        assert_eq!(r.status, 204);
        let r = send_test_event(&app, &path, &app.owner_token, None).await;
        assert_eq!(r.status, 202, "{provider}: {:?}", r.json);
        let d = receive(&mut socket).await;
        assert_eq!(
            (&d["event"], &d["verified"]),
            (&json!(event), &json!(true)),
            "{provider}"
        );
    }

    // Slack's URL check is answered with its challenge, as at ingest, and queues nothing.
    let (wid, _, _) = webhook(&app, &agent, "slack", Some(SLACK_SECRET)).await;
    let r = send_test_event(
        &app,
        &test_event_path(&agent, &wid),
        &app.owner_token,
        Some(json!({"event": "url_verification"})),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert!(r.json["challenge"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(socket.next_incoming(1).await.is_none());
    assert!(app.activity(&agent, &wid).await.is_empty());
}
