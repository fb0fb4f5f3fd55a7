//! A data directory written by an earlier version opens with every delivery intact, and
//! without what a later version no longer keeps.

use std::{path::Path, process::Command};

use serde_json::Value;

use crate::harness::{
    process::{free_port, HubProcess},
    senders::github_signature,
    HubClient,
};

use hookhub::{
    domain::ids::{AccountId, AgentId, DeliveryId, WebhookId},
    store::Store,
};
use sqlx::{migrate::Migrator, sqlite::SqliteConnectOptions, ConnectOptions, Connection};

#[actix_web::test]
async fn deliveries_stored_before_payloads_moved_out_keep_their_headers_and_body() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookhub.db");
    let (account, agent, webhook) = (
        AccountId::generate(),
        AgentId::generate(),
        WebhookId::generate(),
    );
    let (queued, acked) = (DeliveryId::generate(), DeliveryId::generate());
    let body: &[u8] = b"{\"n\":1}\xff\x00 not utf-8";

    // The schema as it was before migration 3, with the body in the deliveries row.
    {
        let mut conn = database_before_migration(&db, 3).await;
        sqlx::query("INSERT INTO accounts VALUES (?, 'a', x'01', 0)")
            .bind(account.as_str())
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO agents VALUES (?, ?, 'b', x'02', 0, NULL)")
            .bind(agent.as_str())
            .bind(account.as_str())
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO webhooks (id, agent_id, name, provider, created_by, signing_secret,
                 created_at, updated_at) VALUES (?, ?, 'w', 'generic', 'user', x'03', 0, 0)",
        )
        .bind(webhook.as_str())
        .bind(agent.as_str())
        .execute(&mut conn)
        .await
        .unwrap();
        for (id, status, queue_seq) in [(&queued, "queued", 1), (&acked, "acked", 2)] {
            sqlx::query(
                "INSERT INTO deliveries (id, webhook_id, agent_id, status, queue_seq, verified,
                     received_at, attempts, size_bytes, headers, body)
                 VALUES (?, ?, ?, ?, ?, 1, 5, 0, ?, '{\"x-h\":\"v\"}', ?)",
            )
            .bind(id.as_str())
            .bind(webhook.as_str())
            .bind(agent.as_str())
            .bind(status)
            .bind(queue_seq)
            .bind(body.len() as i64)
            .bind(body)
            .execute(&mut conn)
            .await
            .unwrap();
        }
        conn.close().await.unwrap();
    }

    let store = Store::open(dir.path()).await.unwrap();
    let owned = store.owned_agent(&account, &agent).await.unwrap().unwrap();
    for id in [&queued, &acked] {
        let found = store
            .get_delivery(&owned, &webhook, id)
            .await
            .unwrap()
            .expect("the delivery survives the migration");
        assert_eq!(found.record.size_bytes, body.len() as i64);
        assert_eq!(found.headers, r#"{"x-h":"v"}"#);
        assert_eq!(found.body, body);
    }
    let pending = store
        .pending_page(&agent, 0, 10, usize::MAX, true)
        .await
        .unwrap()
        .deliveries;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, queued);
    assert_eq!(pending[0].body.as_ref(), body);
}

#[actix_web::test]
async fn dashboard_sessions_that_stored_their_csrf_token_are_ended() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookhub.db");
    let account = AccountId::generate();
    let csrf = "csrf_token_stored_in_plaintext_by_version_3";

    // The schema as it was before migration 4, with a signed-in session.
    {
        let mut conn = database_before_migration(&db, 4).await;
        sqlx::query("INSERT INTO accounts VALUES (?, 'a', x'01', 0)")
            .bind(account.as_str())
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO dashboard_sessions VALUES (x'02', ?, ?, 0, ?)")
            .bind(account.as_str())
            .bind(csrf)
            .bind(i64::MAX)
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }

    let store = Store::open(dir.path()).await.unwrap();
    assert!(
        store.dashboard_session(&[2], 1).await.unwrap().is_none(),
        "the session was ended; its owner signs in again"
    );
    let columns: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM pragma_table_info('dashboard_sessions')")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert!(!columns.is_empty());
    assert!(
        !columns.iter().any(|(name,)| name.contains("csrf")),
        "{columns:?}"
    );
    // The account itself is untouched.
    assert_eq!(store.count_accounts().await.unwrap(), 1);
}

/// A database file at `db` with the migrations before `version` applied, as a hub of that
/// time left it.
async fn database_before_migration(db: &Path, version: i64) -> sqlx::SqliteConnection {
    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    let mut old = Migrator::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"))
        .await
        .unwrap();
    old.migrations = old
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect();
    old.run(&mut conn).await.unwrap();
    conn
}

/// A data directory written by the previous release (`tests/fixtures/make-datadir-0.1.sh`
/// made it with the build of commit 785f0a9, 4 KiB pages, the dedupe keys in an index of
/// `deliveries`, its WAL not yet checkpointed) is carried to the current layout by the
/// current binary with nothing lost: every delivery in its state, the queued and the sent
/// handed out in order (the sent ones as a second attempt), the acked never again, and
/// the provider delivery ids it had seen still recognised as repeats.
#[actix_web::test]
async fn a_data_directory_of_the_previous_release_keeps_every_delivery_and_dedupe_key() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datadir-0.1.tar.gz");
    let untar = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-xzf")
        .arg(&fixture)
        .status()
        .unwrap();
    assert!(untar.success());
    let data = dir.path().join("data");
    let made: Value =
        serde_json::from_slice(&std::fs::read(data.join("expected.json")).unwrap()).unwrap();
    let s = |k: &str| made[k].as_str().unwrap().to_owned();
    let (owner, agent, agent_token, webhook, secret) = (
        s("ownerToken"),
        s("agentId"),
        s("agentToken"),
        s("webhookId"),
        s("signingSecret"),
    );

    let port = free_port();
    let mut hub = HubProcess::start(&data, port, &[]);
    assert!(hub.owner_token.is_none(), "the hub found the old data");
    let client = HubClient::new(port, &owner);
    let activity = client.activity(&agent, &webhook).await;
    let mut by_event: Vec<(String, String, i64)> = activity
        .iter()
        .map(|d| {
            (
                d["event"].as_str().unwrap_or("").to_owned(),
                d["status"].as_str().unwrap().to_owned(),
                d["attempts"].as_i64().unwrap(),
            )
        })
        .collect();
    by_event.sort();
    let expected: Vec<(String, String, i64)> = [
        ("bad", "rejected", 0),
        ("e1", "acked", 1),
        ("e1", "duplicate", 0),
        ("e2", "acked", 1),
        ("e3", "sent", 1),
        ("e4", "sent", 1),
        ("e5", "queued", 0),
        ("e6", "queued", 0),
    ]
    .iter()
    .map(|(e, st, n)| (e.to_string(), st.to_string(), *n))
    .collect();
    assert_eq!(by_event, expected);
    for d in activity.iter().filter(|d| d["status"] == "acked") {
        assert!(d["ackedAt"].is_string() && d["sentAt"].is_string(), "{d}");
    }

    // What it had seen is still a repeat: an acked one's and a queued one's delivery id.
    let post = |event: &'static str, guid: &'static str| {
        let (client, webhook, secret) = (&client, webhook.clone(), secret.clone());
        async move {
            let body = format!("{{\"n\":\"{event}\"}}");
            let signature = github_signature(&secret, &body);
            client
                .ingest(
                    &webhook,
                    body,
                    &[
                        ("content-type", "application/json"),
                        ("x-github-event", event),
                        ("x-github-delivery", guid),
                        ("x-hub-signature-256", &signature),
                    ],
                )
                .await
        }
    };
    assert_eq!(
        post("e1", "guid-1").await.status,
        200,
        "a repeat of an acked one"
    );
    assert_eq!(
        post("e5", "guid-5").await.status,
        200,
        "a repeat of a queued one"
    );
    assert_eq!(post("e7", "guid-8").await.status, 202, "a new one");

    let mut sock = client.connect(&agent_token).await;
    for (event, attempt) in [("e3", 2), ("e4", 2), ("e5", 1), ("e6", 1), ("e7", 1)] {
        let d = sock.next_delivery(10).await;
        assert_eq!(d["event"], event, "{d}");
        assert_eq!(d["attempt"], attempt, "{d}");
        sock.ack(d["deliveryId"].as_str().unwrap()).await;
    }
    assert!(
        sock.next_incoming(1).await.is_none(),
        "nothing else: the acked ones are not handed out again"
    );
    drop(sock);
    assert!(hub.terminate());

    let page_size: i64 = {
        let mut conn = SqliteConnectOptions::new()
            .filename(data.join("hookhub.db"))
            .connect()
            .await
            .unwrap();
        sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(
        page_size, 1024,
        "the file was rewritten with the new page size"
    );
}
