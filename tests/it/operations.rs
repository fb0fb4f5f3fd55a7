//! What an operator relies on, against the real binary: a data directory refuses a master
//! key it was not sealed with, and a backup taken while the hub serves restores with every
//! delivery it had committed.

use std::{
    path::Path,
    process::{Command, Stdio},
    rc::Rc,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{engine::general_purpose::STANDARD, Engine};
use serde_json::{json, Value};

use crate::harness::{
    hookhub_cli,
    process::{free_port, HubProcess},
    HubClient,
};

/// `hookhub serve` on `data_dir` with `env`, expected to refuse to start: its stderr.
fn refused_start(data_dir: &Path, env: &[(&str, &str)]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookhub"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("HOOKHUB_MASTER_KEY")
        .stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A hub that starts would serve until stopped: give it a bounded time to refuse.
    for _ in 0..200 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
        panic!("the hub started on a directory sealed with another key");
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening on"),
        "it listened first"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn new_key() -> String {
    STANDARD.encode(rand_bytes())
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    b
}

#[actix_web::test]
async fn a_data_directory_refuses_to_start_with_a_master_key_it_was_not_sealed_with() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut hub = HubProcess::start(&data, port, &[]);
    let client = HubClient::new(port, hub.owner_token.as_deref().unwrap());
    let (agent, _) = client.create_agent("a").await;
    let webhook = client
        .create_webhook(&client.owner_token, &agent, "w", "github")
        .await;
    assert!(hub.terminate());
    let key_file = data.join("master.key");
    let original = std::fs::read_to_string(&key_file).unwrap();

    // Another key in the environment.
    let err = refused_start(&data, &[("HOOKHUB_MASTER_KEY", &new_key())]);
    assert!(
        err.contains("this data directory was sealed with another master key")
            && err.contains("HOOKHUB_MASTER_KEY"),
        "{err}"
    );
    // Under --log-format json, the refusal is a JSON line like every other.
    let err = refused_start(
        &data,
        &[
            ("HOOKHUB_MASTER_KEY", &new_key()),
            ("HOOKHUB_LOG_FORMAT", "json"),
        ],
    );
    let lines: Vec<Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|v| v["level"] == "ERROR"
            && v["error"]
                .as_str()
                .is_some_and(|e| e.contains("sealed with another master key"))),
        "{err}"
    );
    // Another key file (a directory restored beside the wrong key).
    std::fs::write(&key_file, new_key()).unwrap();
    let err = refused_start(&data, &[]);
    assert!(
        err.contains("this data directory was sealed with another master key")
            && err.contains("master.key"),
        "{err}"
    );
    // No key file at all: refused, and no new key is made in its place.
    std::fs::remove_file(&key_file).unwrap();
    let err = refused_start(&data, &[]);
    assert!(err.contains("master.key is missing"), "{err}");
    assert!(!key_file.exists(), "a new key was made");
    // Secrets never reach the message.
    assert!(!err.contains(original.trim()));

    // With its own key back it starts, and what it sealed still verifies.
    std::fs::write(&key_file, &original).unwrap();
    let port = free_port();
    let restarted = HubProcess::start(&data, port, &[]);
    let client = HubClient::new(port, "unused");
    let body = r#"{"zen":"ok"}"#;
    let secret = webhook["signingSecret"].as_str().unwrap();
    let posted = crate::harness::senders::github_push(
        &client,
        webhook["webhookId"].as_str().unwrap(),
        secret,
        body,
    )
    .await;
    assert_eq!(posted.status, 202, "{:?}", posted.json);

    // The same key given in the environment instead of the file is the same key.
    drop(restarted);
    let env_dir = tempfile::tempdir().unwrap();
    let key = new_key();
    let port = free_port();
    let mut first = HubProcess::start_under(
        &["env", &format!("HOOKHUB_MASTER_KEY={key}")],
        &env_dir.path().join("data"),
        port,
        &[],
        Stdio::null(),
        "warn",
    );
    assert!(first.terminate());
    assert!(!env_dir.path().join("data/master.key").exists());
    let err = refused_start(&env_dir.path().join("data"), &[]);
    assert!(err.contains("master.key is missing"), "{err}");
}

/// A directory made before the check value existed (the previous release's) is checked
/// against a signing secret it sealed: the wrong key is refused there too.
#[actix_web::test]
async fn a_directory_of_the_previous_release_is_checked_against_its_sealed_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datadir-0.1.tar.gz");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-xzf")
        .arg(&fixture)
        .status()
        .unwrap()
        .success());
    let data = dir.path().join("data");
    let err = refused_start(&data, &[("HOOKHUB_MASTER_KEY", &new_key())]);
    assert!(
        err.contains("this data directory was sealed with another master key"),
        "{err}"
    );
    let port = free_port();
    let hub = HubProcess::start(&data, port, &[]);
    assert!(hub.owner_token.is_none());
}

#[actix_web::test]
async fn a_backup_taken_under_load_restores_with_every_delivery_committed_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut hub = HubProcess::start(&data, port, &[]);
    let owner = hub.owner_token.clone().unwrap();
    let client = Rc::new(HubClient::new(port, &owner));
    let (agent, agent_token) = client.create_agent("backed up").await;
    let webhook = client.create_webhook(&owner, &agent, "w", "generic").await["webhookId"]
        .as_str()
        .unwrap()
        .to_owned();
    // Half of what is committed before the backup is acked, half still queued.
    let mut socket = client.connect(&agent_token).await;
    let mut acked = Vec::new();
    for n in 0..20 {
        let posted = client
            .ingest_signed(
                &webhook,
                json!({ "type": "early", "n": n }).to_string(),
                &[],
            )
            .await;
        assert_eq!(posted.status, 202);
        let d = socket.next_delivery(10).await;
        socket.ack(d["deliveryId"].as_str().unwrap()).await;
        acked.push(d["deliveryId"].as_str().unwrap().to_owned());
    }
    socket.close().await;
    crate::harness::wait_status(&client, &agent_token, &webhook, &acked[19], "acked").await;

    // Senders keep posting through the backup; each records what was answered 202.
    let answered: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for s in 0..4 {
        let (client, webhook, answered, stop) = (
            client.clone(),
            webhook.clone(),
            answered.clone(),
            stop.clone(),
        );
        senders.push(actix_web::rt::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = json!({ "type": "load", "s": s, "n": n, "pad": "x".repeat(512) });
                let posted = client.ingest_signed(&webhook, body.to_string(), &[]).await;
                assert_eq!(posted.status, 202, "{:?}", posted.json);
                let id = posted.json["deliveryId"].as_str().unwrap().to_owned();
                answered.lock().unwrap().push(id);
                n += 1;
            }
        }));
    }
    while answered.lock().unwrap().len() < 200 {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let before_backup: Vec<String> = answered.lock().unwrap().clone();
    let backup = dir.path().join("hookhub-backup.db");
    let out = hookhub_cli(&data, &["backup", "--to", backup.to_str().unwrap()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(printed["bytes"].as_u64().unwrap() > 0);
    let during = answered.lock().unwrap().len();
    assert!(
        during > before_backup.len(),
        "the load did not go on through the backup"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the backup is readable by others: {mode:o}"
        );
    }
    // A backup never overwrites.
    let again = hookhub_cli(&data, &["backup", "--to", backup.to_str().unwrap()]).await;
    assert!(!again.status.success());
    hub.kill9();

    // Restore as the README says: the backup as the database, beside the master key.
    let restored = dir.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    std::fs::copy(&backup, restored.join("hookhub.db")).unwrap();
    std::fs::copy(data.join("master.key"), restored.join("master.key")).unwrap();
    let port = free_port();
    let _restored_hub = HubProcess::start(&restored, port, &[]);
    let client = HubClient::new(port, &owner);
    let status_of = |id: String| {
        let client = &client;
        let path = format!("/v1/agents/{agent}/webhooks/{webhook}/deliveries/{id}");
        async move {
            let r = client.get(&path, &client.owner_token).await;
            assert_eq!(r.status, 200, "{id} is not in the backup: {:?}", r.json);
            r.json["status"].as_str().unwrap().to_owned()
        }
    };
    for id in &acked {
        assert_eq!(status_of(id.clone()).await, "acked", "{id}");
    }
    for id in &before_backup {
        assert_eq!(status_of(id.clone()).await, "queued", "{id}");
    }
    // And the restored hub hands what was queued to the agent, verifiable as ever.
    let mut socket = client.connect(&agent_token).await;
    let first = socket.next_delivery(10).await;
    assert!(
        before_backup
            .iter()
            .any(|id| first["deliveryId"] == id.as_str()),
        "{first}"
    );
    assert_eq!(first["verified"], true);
}

#[actix_web::test]
async fn json_logs_are_one_object_per_line_with_an_access_log_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log_path = dir.path().join("hub.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port();
    let mut hub = HubProcess::start_with(
        &data,
        port,
        &["--log-format", "json"],
        Stdio::from(log),
        "info",
    );
    let owner = hub.owner_token.clone().unwrap();
    let client = HubClient::new(port, &owner);
    let (agent, agent_token) = client.create_agent("logged").await;
    let created = client.create_webhook(&owner, &agent, "w", "generic").await;
    let webhook = created["webhookId"].as_str().unwrap().to_owned();
    let signing_secret = created["signingSecret"].as_str().unwrap().to_owned();
    let mut socket = client.connect(&agent_token).await;
    let posted = client.ingest_signed(&webhook, r#"{"type":"x"}"#, &[]).await;
    assert_eq!(posted.status, 202);
    let d = socket.next_delivery(10).await;
    socket.ack(d["deliveryId"].as_str().unwrap()).await;
    let rotated = client
        .post(
            &format!("/v1/agents/{agent}/token/rotate"),
            &owner,
            json!({}),
        )
        .await;
    let new_agent_token = rotated.json["token"].as_str().unwrap().to_owned();
    let signed_in = client
        .request(
            "POST",
            "/dashboard/session",
            None,
            Some(json!({ "token": owner })),
        )
        .await;
    assert_eq!(signed_in.status, 200);
    let cookie = signed_in
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap();
    let session_id = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("hookhub_session=")
        .to_owned();
    // A query string with something that looks like a secret is not logged either.
    let queried = client
        .get(
            &format!("/v1/agents/{agent}/webhooks?token={owner}"),
            &owner,
        )
        .await;
    assert_eq!(queried.status, 200);
    let unknown = client
        .request("GET", "/v1/nothing%0Ahere", Some(&owner), None)
        .await;
    assert_eq!(unknown.status, 404);
    assert!(hub.terminate());

    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(
                v.is_object() && v["level"].is_string() && v["timestamp"].is_string(),
                "{line}"
            );
            v
        })
        .collect();
    let access: Vec<&Value> = lines
        .iter()
        .filter(|v| v["target"] == "hookhub::access")
        .collect();
    let find = |method: &str, path: &str| {
        access
            .iter()
            .find(|v| v["method"] == method && v["path"] == path)
            .unwrap_or_else(|| panic!("no access line for {method} {path}: {access:?}"))
    };
    let ingest = find("POST", &format!("/v1/hooks/{webhook}"));
    assert_eq!(ingest["status"], 202);
    assert!(ingest["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(find("GET", "/v1/agent/connect")["status"], 101);
    assert_eq!(find("POST", "/dashboard/session")["status"], 200);
    assert_eq!(
        find("GET", &format!("/v1/agents/{agent}/webhooks"))["status"],
        200
    );
    // The events of the hub itself are there as JSON too.
    assert!(
        lines.iter().any(|v| v["message"] == "agent connected"),
        "{text}"
    );
    for secret in [
        owner.as_str(),
        agent_token.as_str(),
        new_agent_token.as_str(),
        signing_secret.as_str(),
        session_id.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret reached the log");
    }
}

#[actix_web::test]
async fn the_admin_listener_keeps_the_dashboard_api_and_metrics_off_the_public_one() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let admin_addr = format!("127.0.0.1:{admin_port}");
    let hub = HubProcess::start(
        &dir.path().join("data"),
        port,
        &["--admin-listen", &admin_addr],
    );
    let owner = hub.owner_token.clone().unwrap();
    let public = HubClient::new(port, &owner);
    let admin = HubClient::new(admin_port, &owner);

    let (agent, agent_token) = admin.create_agent("split").await;
    let webhook = admin.create_webhook(&owner, &agent, "w", "generic").await["webhookId"]
        .as_str()
        .unwrap()
        .to_owned();
    // Senders and agents reach the public listener.
    {
        let mut secrets = public.secrets.lock().unwrap();
        secrets.extend(admin.secrets.lock().unwrap().clone());
    }
    let mut socket = public.connect(&agent_token).await;
    let posted = public.ingest_signed(&webhook, r#"{"type":"x"}"#, &[]).await;
    assert_eq!(posted.status, 202, "{:?}", posted.json);
    assert_eq!(
        socket.next_delivery(10).await["deliveryId"],
        posted.json["deliveryId"]
    );
    let health = public.request("GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200);
    // The operator's routes are not there: the 404 of a route that does not exist.
    let nothing = public.request("GET", "/v1/no-such-route", None, None).await;
    for path in ["/metrics", "/v1/agents", "/", "/v1/openapi.json"] {
        let r = public.request("GET", path, Some(&owner), None).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.raw, nothing.raw, "{path}");
    }
    let r = public
        .request(
            "POST",
            "/dashboard/session",
            None,
            Some(json!({ "token": owner })),
        )
        .await;
    assert_eq!(r.status, 404);
    // An agent keeps its own routes there (`me`), which an owner's token cannot use.
    let own = public.get("/v1/agents/me/webhooks", &agent_token).await;
    assert_eq!(own.status, 200, "{:?}", own.json);
    assert_eq!(own.json["webhooks"][0]["webhookId"], webhook.as_str());
    let by_owner = public.get("/v1/agents/me/webhooks", &owner).await;
    assert_eq!(by_owner.status, 404);
    let by_id = public
        .get(&format!("/v1/agents/{agent}/webhooks"), &agent_token)
        .await;
    assert_eq!(by_id.status, 404);
    // They are on the admin listener.
    let metrics = admin.request("GET", "/metrics", None, None).await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8_lossy(&metrics.raw);
    assert!(text.contains(&format!(
        "hookhub_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(text.contains("process_resident_memory_bytes "), "{text}");
    assert!(text.contains("process_cpu_seconds_total "), "{text}");
    assert!(
        text.contains("hookhub_deliveries_ingested_total 1"),
        "{text}"
    );
    assert_eq!(admin.get("/v1/agents", &owner).await.status, 200);
    assert_eq!(admin.request("GET", "/", None, None).await.status, 200);
}

#[actix_web::test]
async fn the_version_is_printed_and_in_the_health_check() {
    let out = Command::new(env!("CARGO_BIN_EXE_hookhub"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("hookhub {version}")
    );
    let app = crate::harness::spawn_app().await;
    let health = app.request("GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json, json!({ "status": "ok", "version": version }));
}

#[actix_web::test]
async fn a_backup_that_cannot_be_made_says_what_and_where() {
    let app = crate::harness::spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir/copy.db");
    let out = hookhub_cli(
        app.data_dir.path(),
        &["backup", "--to", missing.to_str().unwrap()],
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-dir/copy.db.partial"), "{err}");
    assert!(!err.contains("data directory"), "{err}");

    // A copy interrupted earlier left its partial file: the next one says so.
    let to = dir.path().join("copy.db");
    std::fs::write(dir.path().join("copy.db.partial"), b"").unwrap();
    let out = hookhub_cli(
        app.data_dir.path(),
        &["backup", "--to", to.to_str().unwrap()],
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("copy.db.partial exists") && err.contains("Remove it"),
        "{err}"
    );
    assert!(!to.exists());
    std::fs::remove_file(dir.path().join("copy.db.partial")).unwrap();
    let out = hookhub_cli(
        app.data_dir.path(),
        &["backup", "--to", to.to_str().unwrap()],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(to.is_file() && !dir.path().join("copy.db.partial").exists());
}
