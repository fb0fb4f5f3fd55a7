//! The management API: accounts, agents, webhooks, ownership, errors, and the CLI.

use std::process::Command;

use serde_json::{json, Value};

use crate::harness::{hookhub_cli, keys, spawn_app, TestApp};

async fn cli(app: &TestApp, args: &[&str]) -> Value {
    let out = hookhub_cli(app.data_dir.path(), args).await;
    assert!(
        out.status.success(),
        "hookhub {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "one JSON object on one line: {stdout}"
    );
    serde_json::from_str(&stdout).unwrap()
}

/// A second owner, made with the CLI while the server runs on the same data directory.
async fn second_owner(app: &TestApp) -> String {
    let acct = cli(app, &["account", "create", "--name", "mallory"]).await;
    acct["token"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn agents_are_created_and_listed_by_their_owner() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/v1/agents",
            &app.owner_token,
            json!({"name": "triage bot"}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(keys(&r.json), ["agentId", "createdAt", "name", "token"]);
    assert!(r.json["agentId"].as_str().unwrap().starts_with("agt_"));
    assert!(r.json["token"].as_str().unwrap().starts_with("hh_agent_"));
    assert_eq!(r.json["name"], "triage bot");

    let list = app.get("/v1/agents", &app.owner_token).await;
    assert_eq!(list.status, 200);
    let agents = list.json["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0]["agentId"], r.json["agentId"]);
    assert_eq!(agents[0]["connected"], false);
    assert_eq!(agents[0]["lastSeenAt"], Value::Null);
    assert!(agents[0].get("token").is_none());

    // An agent manages webhooks, not agents.
    let agent_token = r.json["token"].as_str().unwrap();
    let refused = app.get("/v1/agents", agent_token).await;
    assert_eq!(refused.status, 401);
    assert!(refused.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("owner token"));
    let other = second_owner(&app).await;
    let theirs = app.get("/v1/agents", &other).await;
    assert_eq!(theirs.json["agents"], json!([]));
}

#[actix_web::test]
async fn webhook_lifecycle_for_an_owner() {
    let app = spawn_app().await;
    let (agent, _) = app.create_agent("bot").await;
    let created = app
        .create_webhook(&app.owner_token, &agent, "GitHub pushes", "github")
        .await;
    // Exactly the seed's shape.
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
    let id = created["webhookId"].as_str().unwrap();
    let secret = created["signingSecret"].as_str().unwrap();
    assert!(id.starts_with("whk_"));
    assert!(secret.starts_with("whsec_"));
    assert_eq!(created["url"], format!("{}/v1/hooks/{id}", app.base));
    assert_eq!(created["provider"], "github");
    assert_eq!(created["active"], true);

    let list = app
        .get(&format!("/v1/agents/{agent}/webhooks"), &app.owner_token)
        .await;
    assert_eq!(list.status, 200);
    let listed = &list.json["webhooks"][0];
    for k in [
        "webhookId",
        "url",
        "name",
        "provider",
        "active",
        "createdBy",
        "createdAt",
        "updatedAt",
    ] {
        assert!(
            listed.get(k).is_some(),
            "listed webhook lacks {k}: {listed}"
        );
    }
    assert_eq!(listed["createdBy"], "user");
    assert!(listed.get("signingSecret").is_none());
    assert!(!String::from_utf8_lossy(&list.raw).contains(secret));

    let path = format!("/v1/agents/{agent}/webhooks/{id}");
    let got = app.get(&path, &app.owner_token).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json["webhookId"], id);
    assert!(!String::from_utf8_lossy(&got.raw).contains(secret));

    // Rotate: a new secret, once; same id and url.
    let rotated = app
        .post(&format!("{path}/rotate"), &app.owner_token, json!({}))
        .await;
    assert_eq!(rotated.status, 200);
    assert_eq!(keys(&rotated.json), ["signingSecret", "webhookId"]);
    assert_eq!(rotated.json["webhookId"], id);
    let new_secret = rotated.json["signingSecret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_"));
    assert_ne!(new_secret, secret);
    let after = app.get(&path, &app.owner_token).await;
    assert_eq!(after.json["url"], created["url"]);
    assert!(!String::from_utf8_lossy(&after.raw).contains(new_secret));

    // Delete deactivates, idempotently, and the webhook stays listed.
    for _ in 0..2 {
        let del = app
            .request("DELETE", &path, Some(&app.owner_token), None)
            .await;
        assert_eq!(del.status, 200);
        assert_eq!(del.json, json!({"webhookId": id, "active": false}));
    }
    let list = app
        .get(&format!("/v1/agents/{agent}/webhooks"), &app.owner_token)
        .await;
    assert_eq!(list.json["webhooks"][0]["active"], false);
    assert_eq!(app.ingest(id, "{}", &[]).await.status, 404);
}

#[actix_web::test]
async fn provider_secret_is_for_stripe_and_slack() {
    let app = spawn_app().await;
    let (agent, _) = app.create_agent("bot").await;
    let stripe = app
        .create_webhook(&app.owner_token, &agent, "pay", "stripe")
        .await;
    let webhook_path = format!(
        "/v1/agents/{agent}/webhooks/{}",
        stripe["webhookId"].as_str().unwrap()
    );
    assert_eq!(
        app.get(&webhook_path, &app.owner_token).await.json["providerSecretSet"],
        false
    );
    let path = format!("{webhook_path}/provider-secret");
    let r = app
        .request(
            "PUT",
            &path,
            Some(&app.owner_token),
            Some(json!({"secret": "whsec_from_stripe"})),
        )
        .await;
    assert_eq!(r.status, 204);
    assert!(r.raw.is_empty());
    // Whether it is set shows; the secret never does.
    let got = app.get(&webhook_path, &app.owner_token).await;
    assert_eq!(got.json["providerSecretSet"], true);
    assert!(!String::from_utf8_lossy(&got.raw).contains("whsec_from_stripe"));

    let gh = app
        .create_webhook(&app.owner_token, &agent, "gh", "github")
        .await;
    let listed = app
        .get(&format!("/v1/agents/{agent}/webhooks"), &app.owner_token)
        .await;
    let gh_listed = listed.json["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["webhookId"] == gh["webhookId"])
        .unwrap();
    assert!(gh_listed.get("providerSecretSet").is_none());
    let path = format!(
        "/v1/agents/{agent}/webhooks/{}/provider-secret",
        gh["webhookId"].as_str().unwrap()
    );
    let r = app
        .request(
            "PUT",
            &path,
            Some(&app.owner_token),
            Some(json!({"secret": "x"})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json["error"]["field"], "secret");
    let r = app
        .request("PUT", &path, Some(&app.owner_token), Some(json!({})))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json["error"]["field"], "secret");
}

#[actix_web::test]
async fn agents_manage_their_own_webhooks_as_me() {
    let app = spawn_app().await;
    let (agent, token) = app.create_agent("bot").await;
    let created = app
        .create_webhook(&token, "me", "self-made", "generic")
        .await;
    let id = created["webhookId"].as_str().unwrap();
    assert_eq!(created["provider"], "generic");

    // The owner sees it, made by the agent; the agent sees it under its own id too.
    let by_owner = app
        .get(
            &format!("/v1/agents/{agent}/webhooks/{id}"),
            &app.owner_token,
        )
        .await;
    assert_eq!(by_owner.status, 200);
    assert_eq!(by_owner.json["createdBy"], "agent");
    let by_id = app
        .get(&format!("/v1/agents/{agent}/webhooks"), &token)
        .await;
    assert_eq!(by_id.json["webhooks"][0]["webhookId"], id);

    // Provider defaults to generic.
    let r = app
        .post("/v1/agents/me/webhooks", &token, json!({"name": "default"}))
        .await;
    assert_eq!(r.json["provider"], "generic");
}

#[actix_web::test]
async fn strangers_get_the_same_404_as_for_nothing() {
    let app = spawn_app().await;
    let (agent, agent_token) = app.create_agent("bot").await;
    let (sibling, sibling_token) = app.create_agent("sibling").await;
    let wh = app
        .create_webhook(&app.owner_token, &agent, "gh", "stripe")
        .await;
    let id = wh["webhookId"].as_str().unwrap();
    let mallory = second_owner(&app).await;
    let unknown = "whk_01J9Z8Q0000000000000000000";

    // Every operation, for a stranger and for nothing at all.
    let ops = |agent: &str, id: &str| -> Vec<(&'static str, String, Option<Value>)> {
        let base = format!("/v1/agents/{agent}/webhooks/{id}");
        vec![
            ("GET", base.clone(), None),
            ("POST", format!("{base}/rotate"), Some(json!({}))),
            (
                "PUT",
                format!("{base}/provider-secret"),
                Some(json!({"secret": "s"})),
            ),
            ("DELETE", base.clone(), None),
            ("GET", format!("{base}/deliveries"), None),
        ]
    };
    let reference = app
        .request(
            "GET",
            &format!("/v1/agents/{agent}/webhooks/{unknown}"),
            Some(&app.owner_token),
            None,
        )
        .await;
    assert_eq!(reference.status, 404);
    assert_eq!(reference.json["error"]["code"], "not_found");

    let strangers = [
        (mallory.as_str(), agent.as_str()), // another owner, real ids
        (sibling_token.as_str(), agent.as_str()), // a sibling agent, real ids
        (sibling_token.as_str(), "me"),     // a sibling agent, as itself
        (app.owner_token.as_str(), sibling.as_str()), // the owner, but the wrong agent
    ];
    for (token, agent_ref) in strangers {
        for (method, path, body) in ops(agent_ref, id) {
            let r = app.request(method, &path, Some(token), body).await;
            assert_eq!(r.status, 404, "{method} {path}");
            assert_eq!(
                r.raw, reference.raw,
                "{method} {path} differs from an unknown id"
            );
        }
    }
    // Listing another's agent is a 404 too, never a 403 or an empty list.
    let r = app
        .get(&format!("/v1/agents/{agent}/webhooks"), &mallory)
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.raw, reference.raw);
    let r = app
        .post(
            &format!("/v1/agents/{agent}/webhooks"),
            &mallory,
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(r.status, 404);
    // Nothing changed: the owner still sees an active webhook, with its secret unchanged.
    let r = app
        .get(&format!("/v1/agents/{agent}/webhooks/{id}"), &agent_token)
        .await;
    assert_eq!(r.json["active"], true);
    assert_eq!(r.json["updatedAt"], r.json["createdAt"]);
}

#[actix_web::test]
async fn bad_input_is_a_400_naming_the_field() {
    let app = spawn_app().await;
    let (agent, _) = app.create_agent("bot").await;
    let path = format!("/v1/agents/{agent}/webhooks");
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({"name": 42}), "name"),
        (json!({"name": "ok", "provider": "gitlab"}), "provider"),
        (json!(["not", "an", "object"]), "body"),
    ];
    for (body, field) in cases {
        let r = app.post(&path, &app.owner_token, body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.json["error"]["code"], "invalid_request");
        assert_eq!(r.json["error"]["field"], field, "{body}: {}", r.json);
        assert!(!r.json["error"]["message"].as_str().unwrap().is_empty());
    }
    // 200 characters is fine.
    let r = app
        .post(&path, &app.owner_token, json!({"name": "x".repeat(200)}))
        .await;
    assert_eq!(r.status, 201);

    // Malformed JSON, and a body that is not JSON at all.
    let r = app
        .client
        .post(app.url(&path))
        .bearer_auth(&app.owner_token)
        .insert_header(("content-type", "application/json"))
        .send_body("{\"name\": ")
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(r["error"]["field"], "body");
    let mut resp = app
        .client
        .post(app.url(&path))
        .bearer_auth(&app.owner_token)
        .insert_header(("content-type", "text/plain"))
        .send_body("{\"name\": \"x\"}")
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["error"]["field"], "content-type");
}

#[actix_web::test]
async fn missing_or_wrong_tokens_are_401() {
    let app = spawn_app().await;
    let (agent, token) = app.create_agent("bot").await;
    let path = format!("/v1/agents/{agent}/webhooks");
    for auth in [
        None,
        Some("Bearer".to_owned()),
        Some("Bearer hh_owner_nope".to_owned()),
        Some("Bearer hh_agent_nope".to_owned()),
        Some(format!("Basic {}", app.owner_token)),
        Some(format!("Bearer {}x", token)),
    ] {
        let mut req = app.client.get(app.url(&path));
        if let Some(a) = &auth {
            req = req.insert_header(("authorization", a.as_str()));
        }
        let mut resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{auth:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
}

#[actix_web::test]
async fn the_database_holds_no_plaintext_secret_or_token() {
    let mut app = spawn_app().await;
    let (agent, agent_token) = app.create_agent("bot").await;
    let wh = app
        .create_webhook(&app.owner_token, &agent, "pay", "stripe")
        .await;
    let id = wh["webhookId"].as_str().unwrap();
    let rotated = app
        .post(
            &format!("/v1/agents/{agent}/webhooks/{id}/rotate"),
            &app.owner_token,
            json!({}),
        )
        .await;
    let provider_secret = "whsec_stripe_issued_secret_value";
    let r = app
        .request(
            "PUT",
            &format!("/v1/agents/{agent}/webhooks/{id}/provider-secret"),
            Some(&app.owner_token),
            Some(json!({"secret": provider_secret})),
        )
        .await;
    assert_eq!(r.status, 204);
    app.stop().await;

    let bytes = crate::harness::process::database_bytes(app.data_dir.path());
    assert!(bytes.len() > 4096, "the database was read");
    let haystack = String::from_utf8_lossy(&bytes);
    for needle in [
        app.owner_token.as_str(),
        agent_token.as_str(),
        wh["signingSecret"].as_str().unwrap(),
        rotated.json["signingSecret"].as_str().unwrap(),
        provider_secret,
    ] {
        // The part after the prefix is the secret material.
        let material = &needle[needle.len() - 20..];
        assert!(
            !haystack.contains(material),
            "plaintext found in the database"
        );
    }
    assert!(
        haystack.contains(id),
        "ids are stored in plaintext, so the search works"
    );
}

#[actix_web::test]
async fn cli_commands_print_json_whose_tokens_work() {
    let app = spawn_app().await;
    let acct = cli(&app, &["account", "create", "--name", "ops team"]).await;
    assert_eq!(keys(&acct), ["accountId", "name", "token"]);
    assert_eq!(acct["name"], "ops team");
    let account_id = acct["accountId"].as_str().unwrap();
    assert!(account_id.starts_with("acct_"));
    let owner_token = acct["token"].as_str().unwrap();

    let agent = cli(
        &app,
        &[
            "agent",
            "create",
            "--account",
            account_id,
            "--name",
            "deployer",
        ],
    )
    .await;
    assert_eq!(
        keys(&agent),
        ["accountId", "agentId", "createdAt", "name", "token"]
    );
    assert_eq!(agent["accountId"], account_id);
    let agent_id = agent["agentId"].as_str().unwrap();
    let agent_token = agent["token"].as_str().unwrap();

    // Both tokens work against the server already running on this data directory.
    let list = app.get("/v1/agents", owner_token).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json["agents"][0]["agentId"], agent_id);
    let created = app
        .create_webhook(agent_token, "me", "from the cli agent", "github")
        .await;
    let seen = app
        .get(
            &format!(
                "/v1/agents/{agent_id}/webhooks/{}",
                created["webhookId"].as_str().unwrap()
            ),
            owner_token,
        )
        .await;
    assert_eq!(seen.status, 200);
    assert_eq!(seen.json["createdBy"], "agent");

    // A wrong account is a clear failure, not a JSON object.
    let out = hookhub_cli(
        app.data_dir.path(),
        &[
            "agent",
            "create",
            "--account",
            "acct_01J9Z8Q0000000000000000000",
            "--name",
            "x",
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no account"));
}

#[actix_web::test]
async fn unknown_routes_and_health() {
    let app = spawn_app().await;
    let r = app.request("GET", "/v1/nothing-here", None, None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json["error"]["code"], "not_found");
    let r = app.request("GET", "/healthz", None, None).await;
    assert_eq!(r.status, 200);
}

/// Every token and secret that crosses the API, with the most verbose logs on: none of them
/// may appear in what the hub writes to its log.
#[actix_web::test]
async fn logs_never_contain_tokens_or_secrets() {
    use crate::harness::process::{free_port, HubProcess};
    let data = tempfile::tempdir().unwrap();
    let log_path = data.path().join("hub.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port();
    let mut hub = HubProcess::start_with(data.path(), port, &[], log.into(), "trace");
    let owner = hub.owner_token.clone().unwrap();
    let client = crate::harness::HubClient::new(port, &owner);
    let (agent, agent_token) = client.create_agent("bot").await;
    let wh = client.create_webhook(&owner, &agent, "pay", "stripe").await;
    let wid = wh["webhookId"].as_str().unwrap();
    let rotated = client
        .post(
            &format!("/v1/agents/{agent}/webhooks/{wid}/rotate"),
            &agent_token,
            json!({}),
        )
        .await;
    let provider_secret = "whsec_provider_issued_0123456789";
    client
        .request(
            "PUT",
            &format!("/v1/agents/{agent}/webhooks/{wid}/provider-secret"),
            Some(&owner),
            Some(json!({"secret": provider_secret})),
        )
        .await;
    // A rejected post, and a bad token.
    client
        .ingest(wid, "{}", &[("stripe-signature", "t=1,v1=00")])
        .await;
    client
        .get("/v1/agents", "hh_owner_not_a_real_token_at_all")
        .await;
    assert!(hub.terminate());

    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(logged.contains(wid), "the log was written at trace level");
    for secret in [
        owner.as_str(),
        agent_token.as_str(),
        wh["signingSecret"].as_str().unwrap(),
        rotated.json["signingSecret"].as_str().unwrap(),
        provider_secret,
        "hh_owner_not_a_real_token_at_all",
    ] {
        let material = &secret[secret.len() - 16..];
        assert!(!logged.contains(material), "a secret reached the log");
    }
}

/// Anyone can send the hub bytes that are not HTTP. Each such request is refused and
/// counted, not logged as an error: a flood of them makes a summary line at most every
/// 10 s (and one at shutdown for the rest), never one line each, and the hub serves on.
#[actix_web::test]
async fn malformed_requests_are_counted_and_summarised_not_logged_as_errors() {
    use crate::harness::process::{free_port, HubProcess};
    use std::io::{Read, Write};

    let data = tempfile::tempdir().unwrap();
    let log_path = data.path().join("hub.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port();
    let mut hub = HubProcess::start_with(&data.path().join("data"), port, &[], log.into(), "info");
    let malformed: [&[u8]; 3] = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad\x01Header: y\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    let sent = 201;
    for n in 0..sent {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        stream.write_all(malformed[n % malformed.len()]).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(
            answer.starts_with(b"HTTP/1.1 400"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }

    let client = crate::harness::HubClient::new(port, "");
    assert_eq!(
        client.request("GET", "/healthz", None, None).await.status,
        200
    );
    let metrics = client.request("GET", "/metrics", None, None).await;
    let metrics = String::from_utf8_lossy(&metrics.raw).into_owned();
    assert!(
        metrics.contains(&format!("hookhub_malformed_requests_total {sent}\n")),
        "{metrics}"
    );
    assert!(hub.terminate());

    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(logged.contains("hookhub started"), "{logged}");
    assert!(!logged.contains("ERROR"), "{logged}");
    let summaries: Vec<&str> = logged
        .lines()
        .filter(|line| line.contains("malformed HTTP request"))
        .collect();
    assert!(
        (1..=2).contains(&summaries.len()),
        "a summary, at most every 10 s and at shutdown: {summaries:#?}"
    );
    let counted: usize = summaries
        .iter()
        .map(|line| {
            assert!(line.contains("WARN"), "{line}");
            let before = line.split(" malformed HTTP requests").next().unwrap();
            before.rsplit(' ').next().unwrap().parse::<usize>().unwrap()
        })
        .sum();
    assert_eq!(counted, sent, "{summaries:#?}");
}

#[actix_web::test]
async fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let app = spawn_app().await;
    let mut second = Command::new(env!("CARGO_BIN_EXE_hookhub"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(app.data_dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("hookhub runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            second.kill().unwrap();
            panic!("a second server started on a data directory in use");
        }
        // Not a blocking sleep: the first server runs on this thread.
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("another hookhub is serving the data directory"),
        "{stderr}"
    );
    // The first goes on serving. (The account and agent commands, which do not take the
    // lock, are tested beside a running server above.)
    assert_eq!(app.get("/v1/agents", &app.owner_token).await.status, 200);
}

/// The data directory holds payloads, token hashes and the master key. Only the user the
/// hub runs as may read any of it: what the hub creates, and what it finds left readable
/// to others (by an older version, or by hand) once it starts on it again.
#[cfg(unix)]
#[actix_web::test]
async fn data_files_are_private_to_the_user_the_hub_runs_as() {
    use crate::harness::process::{free_port, HubProcess};
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }
    /// The directory is 0700 and every file in it is its owner's alone; the database's
    /// WAL and shared memory are there, as they are while a hub runs.
    fn assert_private(dir: &std::path::Path) {
        assert_eq!(format!("{:o}", mode(dir)), "700", "the data directory");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(mode(&path) & 0o077, 0, "{name} is {:o}", mode(&path));
            names.push(name);
        }
        for expected in [
            "hookhub.db",
            "hookhub.db-wal",
            "hookhub.db-shm",
            "master.key",
            "serve.lock",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
        }
    }
    async fn write_some(port: u16, owner: &str) {
        let client = crate::harness::HubClient::new(port, owner);
        let (agent, _) = client.create_agent("bot").await;
        let wh = client.create_webhook(owner, &agent, "gh", "generic").await;
        let r = client
            .ingest_signed(wh["webhookId"].as_str().unwrap(), r#"{"n":1}"#, &[])
            .await;
        assert_eq!(r.status, 202, "{:?}", r.json);
    }

    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let mut hub = HubProcess::start(&data, free_port(), &[]);
    let owner = hub.owner_token.clone().unwrap();
    assert_private(&data);
    write_some(hub.port, &owner).await;
    assert_private(&data);
    // Killed, so that its WAL and shared memory stay behind for the next start to find.
    hub.kill9();

    // Everything loosened, as a hub that did not care left it: the next start tightens it.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let hub = HubProcess::start(&data, free_port(), &[]);
    write_some(hub.port, &owner).await;
    assert_private(&data);
}
