//! Credentials that can be revoked: agent and owner tokens rotated, agents deleted, and
//! agents and webhooks renamed, against the real server over HTTP and its sockets.

use awc::http::header;
use serde_json::{json, Value};

use crate::harness::{
    create_owner, hookhub_cli, keys, spawn_app, wait_status, AgentSocket, HubClient, Incoming,
};

/// The close code and reason of the socket's next close frame; fails on anything else.
async fn closed_with(socket: &mut AgentSocket) -> (u16, String) {
    match socket.next_incoming(10).await {
        Some(Incoming::Close(Some(reason))) => (
            u16::from(reason.code),
            reason.description.unwrap_or_default(),
        ),
        Some(Incoming::Close(None)) => panic!("closed without a code"),
        Some(Incoming::Json(v)) => panic!("expected a close, got {v}"),
        Some(Incoming::Ended) => panic!("the socket ended without a close frame"),
        None => panic!("the socket stayed open"),
    }
}

async fn delivered_once(hub: &HubClient, socket: &mut AgentSocket, webhook: &str) -> String {
    let posted = hub.ingest_signed(webhook, r#"{"type":"t"}"#, &[]).await;
    assert_eq!(posted.status, 202, "{:?}", posted.json);
    let d = socket.next_delivery(10).await;
    assert_eq!(d["deliveryId"], posted.json["deliveryId"]);
    let id = d["deliveryId"].as_str().unwrap().to_owned();
    socket.ack(&id).await;
    id
}

#[actix_web::test]
async fn a_rotated_agent_token_stops_at_once_and_its_socket_is_closed_with_4001() {
    let app = spawn_app().await;
    let (agent, old_token) = app.create_agent("rotating").await;
    let webhook = app
        .create_webhook(&app.owner_token, &agent, "w", "generic")
        .await["webhookId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut socket = app.connect(&old_token).await;
    delivered_once(&app, &mut socket, &webhook).await;

    let rotated = app
        .post(
            &format!("/v1/agents/{agent}/token/rotate"),
            &app.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.json);
    assert_eq!(keys(&rotated.json), ["agentId", "token"]);
    assert_eq!(rotated.json["agentId"], agent.as_str());
    let new_token = rotated.json["token"].as_str().unwrap().to_owned();
    assert!(new_token.starts_with("hh_agent_") && new_token != old_token);

    let (code, reason) = closed_with(&mut socket).await;
    assert_eq!(code, 4001);
    assert_eq!(reason, "token rotated");
    let old = app.get("/v1/agents/me/webhooks", &old_token).await;
    assert_eq!(old.status, 401, "{:?}", old.json);
    let listed = app.get("/v1/agents", &app.owner_token).await;
    let row = &listed.json["agents"][0];
    assert_eq!(row["agentId"], agent.as_str());
    assert_eq!(row["active"], true);

    // The new token works everywhere the old one did, the agent's queue intact.
    let mut socket = app.connect(&new_token).await;
    delivered_once(&app, &mut socket, &webhook).await;
    assert_eq!(
        app.get("/v1/agents/me/webhooks", &new_token).await.status,
        200
    );

    // The agent rotates its own token, as `me`: the same, and it is told on its socket.
    let own = app
        .post("/v1/agents/me/token/rotate", &new_token, json!({}))
        .await;
    assert_eq!(own.status, 200, "{:?}", own.json);
    assert_eq!(own.json["agentId"], agent.as_str());
    assert_eq!(closed_with(&mut socket).await.0, 4001);
    assert_eq!(
        app.get("/v1/agents/me/webhooks", &new_token).await.status,
        401
    );
    let newest = own.json["token"].as_str().unwrap();
    assert_eq!(app.get("/v1/agents/me/webhooks", newest).await.status, 200);

    // Another owner's rotation of this agent is a 404, byte for byte a missing agent's.
    let stranger = create_owner(&app, "stranger").await;
    let theirs = app
        .post(
            &format!("/v1/agents/{agent}/token/rotate"),
            &stranger,
            json!({}),
        )
        .await;
    let missing = app
        .post(
            "/v1/agents/agt_01J9Z8Q0000000000000000000/token/rotate",
            &stranger,
            json!({}),
        )
        .await;
    assert_eq!(theirs.status, 404);
    assert_eq!(theirs.raw, missing.raw);
    assert_eq!(app.get("/v1/agents/me/webhooks", newest).await.status, 200);
}

#[actix_web::test]
async fn a_deleted_agent_stops_everywhere_and_its_history_stays_readable() {
    let app = spawn_app().await;
    let (agent, token) = app.create_agent("leaving").await;
    let (other, other_token) = app.create_agent("staying").await;
    let webhook = app
        .create_webhook(&app.owner_token, &agent, "w1", "generic")
        .await["webhookId"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = app.create_webhook(&token, "me", "w2", "generic").await["webhookId"]
        .as_str()
        .unwrap()
        .to_owned();
    let kept = app
        .create_webhook(&app.owner_token, &other, "kept", "generic")
        .await["webhookId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut socket = app.connect(&token).await;
    let acked = delivered_once(&app, &mut socket, &webhook).await;
    wait_status(&app, &token, &webhook, &acked, "acked").await;

    // An agent cannot delete itself: deleting is its owner's.
    let by_itself = app
        .request("DELETE", "/v1/agents/me", Some(&token), None)
        .await;
    assert_eq!(by_itself.status, 401, "{:?}", by_itself.json);

    let deleted = app
        .request(
            "DELETE",
            &format!("/v1/agents/{agent}"),
            Some(&app.owner_token),
            None,
        )
        .await;
    assert_eq!(deleted.status, 200, "{:?}", deleted.json);
    assert_eq!(deleted.json, json!({ "agentId": agent, "active": false }));
    let (code, reason) = closed_with(&mut socket).await;
    assert_eq!((code, reason.as_str()), (4001, "agent deleted"));
    assert_eq!(app.get("/v1/agents/me/webhooks", &token).await.status, 401);

    // Its webhooks answer senders exactly as a webhook that never existed does.
    let unknown = app.ingest_signed(&webhook, r#"{"type":"late"}"#, &[]).await;
    let never = app
        .ingest("whk_01J9Z8Q0000000000000000000", "{}", &[])
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.raw, never.raw);
    assert_eq!(app.ingest_signed(&second, "{}", &[]).await.status, 404);

    // The owner still reads everything it had.
    let listed = app.get("/v1/agents", &app.owner_token).await;
    let rows = listed.json["agents"].as_array().unwrap();
    let row = |id: &str| rows.iter().find(|a| a["agentId"] == id).unwrap().clone();
    assert_eq!(row(&agent)["active"], false);
    assert_eq!(row(&agent)["connected"], false);
    assert_eq!(row(&other)["active"], true);
    let webhooks = app
        .get(&format!("/v1/agents/{agent}/webhooks"), &app.owner_token)
        .await;
    assert_eq!(webhooks.status, 200);
    let hooks = webhooks.json["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 2);
    assert!(hooks.iter().all(|w| w["active"] == false), "{hooks:?}");
    let history = app.activity(&agent, &webhook).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["deliveryId"], acked.as_str());
    assert_eq!(history[0]["status"], "acked");
    let detail = app
        .get(
            &format!("/v1/agents/{agent}/webhooks/{webhook}/deliveries/{acked}"),
            &app.owner_token,
        )
        .await;
    assert_eq!(detail.status, 200);
    assert_eq!(detail.json["history"][0]["outcome"], "acked");

    // Idempotent; and nothing new can be made for it or handed to it.
    let again = app
        .request(
            "DELETE",
            &format!("/v1/agents/{agent}"),
            Some(&app.owner_token),
            None,
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.raw, deleted.raw);
    let hook = app
        .post(
            &format!("/v1/agents/{agent}/webhooks"),
            &app.owner_token,
            json!({ "name": "new" }),
        )
        .await;
    assert_eq!(hook.status, 409, "{:?}", hook.json);
    assert_eq!(hook.json["error"]["code"], "conflict");
    let rotate = app
        .post(
            &format!("/v1/agents/{agent}/token/rotate"),
            &app.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(rotate.status, 409, "{:?}", rotate.json);
    let secret = app
        .post(
            &format!("/v1/agents/{agent}/webhooks/{webhook}/rotate"),
            &app.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(secret.status, 409, "{:?}", secret.json);

    // The sibling is untouched.
    let mut sibling = app.connect(&other_token).await;
    delivered_once(&app, &mut sibling, &kept).await;
}

#[actix_web::test]
async fn agents_and_webhooks_are_renamed_by_those_who_own_them() {
    let app = spawn_app().await;
    let (agent, token) = app.create_agent("old name").await;
    let webhook = app.create_webhook(&token, "me", "old hook", "github").await["webhookId"]
        .as_str()
        .unwrap()
        .to_owned();

    let renamed = app
        .request(
            "PATCH",
            &format!("/v1/agents/{agent}"),
            Some(&app.owner_token),
            Some(json!({ "name": "  deployer  " })),
        )
        .await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.json);
    assert_eq!(renamed.json["name"], "deployer");
    assert_eq!(renamed.json["agentId"], agent.as_str());
    assert_eq!(renamed.json["active"], true);
    let listed = app.get("/v1/agents", &app.owner_token).await;
    assert_eq!(listed.json["agents"][0]["name"], "deployer");
    // An agent renames its webhooks, not itself.
    let itself = app
        .request(
            "PATCH",
            "/v1/agents/me",
            Some(&token),
            Some(json!({ "name": "x" })),
        )
        .await;
    assert_eq!(itself.status, 401);
    // Authorized before the body is read: a bad body from anyone but the owner is not a 400.
    let bad_by_agent = app
        .request(
            "PATCH",
            "/v1/agents/me",
            Some(&token),
            Some(json!("not an object")),
        )
        .await;
    assert_eq!(bad_by_agent.status, 401, "{:?}", bad_by_agent.json);
    let stranger = create_owner(&app, "stranger").await;
    let bad_by_stranger = app
        .request(
            "PATCH",
            &format!("/v1/agents/{agent}"),
            Some(&stranger),
            Some(json!("not an object")),
        )
        .await;
    assert_eq!(bad_by_stranger.status, 404, "{:?}", bad_by_stranger.json);

    let hook = app
        .request(
            "PATCH",
            &format!("/v1/agents/me/webhooks/{webhook}"),
            Some(&token),
            Some(json!({ "name": "GitHub pushes" })),
        )
        .await;
    assert_eq!(hook.status, 200, "{:?}", hook.json);
    assert_eq!(hook.json["name"], "GitHub pushes");
    assert_eq!(hook.json["webhookId"], webhook.as_str());
    assert!(hook.json.get("signingSecret").is_none());
    let read = app
        .get(
            &format!("/v1/agents/{agent}/webhooks/{webhook}"),
            &app.owner_token,
        )
        .await;
    assert_eq!(read.json["name"], "GitHub pushes");

    let bad = app
        .request(
            "PATCH",
            &format!("/v1/agents/me/webhooks/{webhook}"),
            Some(&token),
            Some(json!({ "name": "" })),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json["error"]["field"], "name");

    // A sibling agent renaming it gets the 404 of a webhook that does not exist.
    let (_, sibling) = app.create_agent("sibling").await;
    let theirs = app
        .request(
            "PATCH",
            &format!("/v1/agents/me/webhooks/{webhook}"),
            Some(&sibling),
            Some(json!({ "name": "mine now" })),
        )
        .await;
    let missing = app
        .request(
            "PATCH",
            "/v1/agents/me/webhooks/whk_01J9Z8Q0000000000000000000",
            Some(&sibling),
            Some(json!({ "name": "mine now" })),
        )
        .await;
    assert_eq!(theirs.status, 404);
    assert_eq!(theirs.raw, missing.raw);
}

/// The cookie pair a dashboard sign-in set.
async fn dashboard_cookie(app: &HubClient, token: &str) -> String {
    let r = app
        .request(
            "POST",
            "/dashboard/session",
            None,
            Some(json!({ "token": token })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let set = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

async fn session_status(app: &HubClient, cookie: &str) -> u16 {
    let resp = app
        .client
        .get(app.url("/dashboard/session"))
        .insert_header((header::COOKIE, cookie))
        .send()
        .await
        .unwrap();
    resp.status().as_u16()
}

#[actix_web::test]
async fn a_rotated_owner_token_stops_at_once_and_ends_the_other_dashboard_sessions() {
    let app = spawn_app().await;
    let (agent, _) = app.create_agent("a").await;
    let elsewhere = dashboard_cookie(&app, &app.owner_token).await;
    let here = dashboard_cookie(&app, &app.owner_token).await;
    let csrf = app
        .client
        .get(app.url("/dashboard/session"))
        .insert_header((header::COOKIE, here.as_str()))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["csrfToken"]
        .as_str()
        .unwrap()
        .to_owned();

    // Rotated from the dashboard: this session stays, every other one ends.
    let mut resp = app
        .client
        .post(app.url("/v1/account/token/rotate"))
        .insert_header((header::COOKIE, here.as_str()))
        .insert_header(("X-CSRF-Token", csrf.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let rotated: Value = resp.json().await.unwrap();
    assert_eq!(keys(&rotated), ["accountId", "token"]);
    assert_eq!(rotated["accountId"], app.owner_account.as_str());
    let token = rotated["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("hh_owner_"));
    assert_eq!(app.get("/v1/agents", &app.owner_token).await.status, 401);
    assert_eq!(app.get("/v1/agents", &token).await.status, 200);
    assert_eq!(session_status(&app, &here).await, 200);
    assert_eq!(session_status(&app, &elsewhere).await, 401);

    // With the bearer token: every session ends. An agent token cannot rotate it.
    let again = app
        .post("/v1/account/token/rotate", &token, json!({}))
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(session_status(&app, &here).await, 401);
    assert_eq!(app.get("/v1/agents", &token).await.status, 401);
    let newest = again.json["token"].as_str().unwrap();
    let listed = app.get("/v1/agents", newest).await;
    assert_eq!(listed.json["agents"][0]["agentId"], agent.as_str());
    let (_, agent_token) = app.create_agent_as(newest, "b").await;
    let refused = app
        .post("/v1/account/token/rotate", &agent_token, json!({}))
        .await;
    assert_eq!(refused.status, 401);
    assert_eq!(app.get("/v1/agents", newest).await.status, 200);
}

#[actix_web::test]
async fn whoever_holds_the_data_directory_can_recover_a_lost_owner_token() {
    let app = spawn_app().await;
    let other = create_owner(&app, "ops team").await;

    let out = hookhub_cli(app.data_dir.path(), &["account", "list"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let accounts = listed["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[0]["accountId"], app.owner_account.as_str());
    assert_eq!(accounts[1]["name"], "ops team");
    for a in accounts {
        assert_eq!(keys(a), ["accountId", "createdAt", "name"]);
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hh_owner_"));

    let out = hookhub_cli(
        app.data_dir.path(),
        &["account", "rotate-token", "--account", &app.owner_account],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rotated["accountId"], app.owner_account.as_str());
    let token = rotated["token"].as_str().unwrap();
    // The running hub takes the new token and refuses the old one at once.
    assert_eq!(app.get("/v1/agents", token).await.status, 200);
    assert_eq!(app.get("/v1/agents", &app.owner_token).await.status, 401);
    assert_eq!(app.get("/v1/agents", &other).await.status, 200);

    let out = hookhub_cli(
        app.data_dir.path(),
        &[
            "account",
            "rotate-token",
            "--account",
            "acct_01J9Z8Q0000000000000000000",
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no account acct_01J9Z8Q0000000000000000000")
    );
}

#[actix_web::test]
async fn the_account_commands_refuse_a_directory_without_a_hub_unless_told_to_create_one() {
    let parent = tempfile::tempdir().unwrap();
    let typo = parent.path().join("dtaa");
    for args in [
        &["account", "create", "--name", "x"][..],
        &[
            "agent",
            "create",
            "--account",
            "acct_01J9Z8Q0000000000000000000",
            "--name",
            "x",
        ][..],
        &["account", "list"][..],
    ] {
        let out = hookhub_cli(&typo, args).await;
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("holds no hub database") && err.contains("--init"),
            "{err}"
        );
        assert!(
            !typo.join("hookhub.db").exists(),
            "{args:?} made a database"
        );
    }
    let out = hookhub_cli(&typo, &["account", "create", "--init", "--name", "first"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(typo.join("hookhub.db").is_file());
    let out = hookhub_cli(&typo, &["account", "create", "--name", "second"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
