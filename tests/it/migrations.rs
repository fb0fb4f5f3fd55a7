//! A data directory written by an earlier version opens with every delivery intact, and
//! without what a later version no longer keeps.

use std::path::Path;

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
        let (record, headers, stored) = store
            .get_delivery(&owned, &webhook, id)
            .await
            .unwrap()
            .expect("the delivery survives the migration");
        assert_eq!(record.size_bytes, body.len() as i64);
        assert_eq!(headers, r#"{"x-h":"v"}"#);
        assert_eq!(stored, body);
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
