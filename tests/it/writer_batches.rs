//! The delivery writer applies acks and sends in batches: every one still lands.

use std::{collections::HashMap, time::Duration};

use hookhub::{
    domain::{
        ids::{AgentId, DeliveryId},
        DeliveryStatus, NewDelivery, Via,
    },
    store::{BatchWriter, BatchWrites, InsertRow, SqliteBatch, StoreError},
};

use crate::harness::{
    spawn_app,
    store::{new_delivery, seeded_store},
};

#[actix_web::test]
async fn a_burst_of_acks_is_committed_with_one_attempt_each() {
    let app = spawn_app().await;
    let (agent, agent_token) = app.create_agent("bot").await;
    let wh = app
        .create_webhook(&app.owner_token, &agent, "gh", "generic")
        .await;
    let wid = wh["webhookId"].as_str().unwrap();
    let mut ids = Vec::new();
    for n in 0..60 {
        let r = app.ingest_signed(wid, format!(r#"{{"n":{n}}}"#), &[]).await;
        assert_eq!(r.status, 202);
        ids.push(r.json["deliveryId"].as_str().unwrap().to_owned());
    }
    // Offline first, so the flush sends a whole window at once and the acks come back
    // in a burst that the writer commits together.
    let mut sock = app.connect(&agent_token).await;
    for expected in &ids {
        let d = sock.next_delivery(5).await;
        assert_eq!(d["deliveryId"], expected.as_str());
        assert_eq!(d["attempt"], 1);
        sock.ack(expected).await;
    }

    let path = format!("/v1/agents/{agent}/webhooks/{wid}/deliveries?limit=100");
    let mut list = Vec::new();
    for _ in 0..100 {
        list = app.get(&path, &app.owner_token).await.json["deliveries"]
            .as_array()
            .unwrap()
            .clone();
        if list.len() == ids.len() && list.iter().all(|d| d["status"] == "acked") {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(list.len(), ids.len());
    for d in &list {
        assert_eq!(d["status"], "acked", "{d}");
        assert_eq!(d["attempts"], 1, "{d}");
        assert!(d["sentAt"].is_string() && d["ackedAt"].is_string(), "{d}");
    }
}

fn queued(rows: &[NewDelivery]) -> Vec<InsertRow<'_>> {
    rows.iter()
        .enumerate()
        .map(|(i, d)| InsertRow {
            seq: i as i64 + 1,
            d,
            status: DeliveryStatus::Queued,
            queue_seq: Some(i as i64 + 1),
            reason: None,
            cut: None,
        })
        .collect()
}

/// One batch as the writer runs it: open the transaction, write, commit.
async fn commit_batch(
    conn: &mut SqliteBatch,
    rows: &[InsertRow<'_>],
    sent: &[(AgentId, DeliveryId)],
    acks: &[(AgentId, DeliveryId)],
    at: i64,
) -> Result<HashMap<AgentId, u64>, StoreError> {
    conn.begin(&[]).await?;
    let sent: Vec<_> = sent
        .iter()
        .map(|(agent, id)| (agent.clone(), Via::Socket, id.clone()))
        .collect();
    let acks: Vec<_> = acks
        .iter()
        .map(|(agent, id)| (agent.clone(), id.clone(), None))
        .collect();
    let writes = BatchWrites {
        rows,
        sent: &sent,
        acks: &acks,
        seen: &[],
        at,
    };
    let acked = conn.write(&writes, true).await?;
    // How many each agent's acks took; the bytes they freed are the writer's business.
    Ok(acked
        .into_iter()
        .map(|(agent, (n, _))| (agent, n))
        .collect())
}

#[actix_web::test]
async fn a_batch_that_fails_keeps_nothing_and_the_next_one_commits() {
    let seeded = seeded_store(1).await;
    let (agent, webhook) = &seeded.agents[0];
    let mut conn = seeded.store.batch_writer().await.unwrap();

    // 40 rows: the first 32 go in one round trip and succeed; the last repeats an id, so
    // the second round trip fails before its COMMIT.
    let mut rows: Vec<_> = (0..39).map(|_| new_delivery(agent, webhook, 1)).collect();
    rows.push(rows[0].clone());
    let failed = commit_batch(&mut conn, &queued(&rows), &[], &[], 1).await;
    assert!(
        failed.is_err(),
        "a repeated delivery id must fail the batch"
    );
    conn.rollback().await;
    assert_eq!(seeded.store.backlog_depth(agent).await.unwrap(), 0);

    let rows = [new_delivery(agent, webhook, 2)];
    commit_batch(&mut conn, &queued(&rows), &[], &[], 2)
        .await
        .unwrap();
    assert_eq!(seeded.store.backlog_depth(agent).await.unwrap(), 1);
}

#[actix_web::test]
async fn one_batch_acks_for_several_agents_each_only_its_own() {
    let seeded = seeded_store(2).await;
    let ((a, wa), (b, wb)) = (&seeded.agents[0], &seeded.agents[1]);
    let mut conn = seeded.store.batch_writer().await.unwrap();
    let rows = [
        new_delivery(a, wa, 1),
        new_delivery(a, wa, 1),
        new_delivery(a, wa, 1),
        new_delivery(b, wb, 1),
        new_delivery(b, wb, 1),
    ];
    let id = |i: usize| rows[i].id.clone();
    commit_batch(&mut conn, &queued(&rows), &[], &[], 1)
        .await
        .unwrap();

    // a's first two twice over, b's first, and b trying to ack a's third.
    let acks = [
        (a.clone(), id(0)),
        (a.clone(), id(1)),
        (a.clone(), id(0)),
        (b.clone(), id(3)),
        (b.clone(), id(2)),
    ];
    // Before this commit: a's third sent twice (b's ack of it must not take those sends
    // over), a's second once (and acked: one write does both), b's second once.
    let sent = [
        (a.clone(), id(2)),
        (a.clone(), id(2)),
        (a.clone(), id(1)),
        (b.clone(), id(4)),
    ];
    let acked = commit_batch(&mut conn, &[], &sent, &acks, 2).await.unwrap();
    assert_eq!(acked.get(a), Some(&2));
    assert_eq!(acked.get(b), Some(&1));
    assert_eq!(seeded.store.backlog_depth(a).await.unwrap(), 1);
    assert_eq!(seeded.store.backlog_depth(b).await.unwrap(), 1);

    let state = |i: usize| {
        sqlx::query_as::<_, (String, i64, Option<i64>)>(
            "SELECT status, attempts, sent_at FROM deliveries WHERE id = ?",
        )
        .bind(rows[i].id.as_str().to_owned())
        .fetch_one(seeded.store.pool())
    };
    let acked = "acked".to_owned();
    let sent = "sent".to_owned();
    assert_eq!(state(0).await.unwrap(), (acked.clone(), 0, None));
    assert_eq!(state(1).await.unwrap(), (acked.clone(), 1, Some(2)));
    assert_eq!(state(2).await.unwrap(), (sent.clone(), 2, Some(2)));
    assert_eq!(state(3).await.unwrap(), (acked, 0, None));
    assert_eq!(state(4).await.unwrap(), (sent, 1, Some(2)));
}

#[actix_web::test]
async fn commits_reach_the_database_file_without_waiting_for_a_full_wal() {
    let app = spawn_app().await;
    let (agent, _) = app.create_agent("bot").await;
    let wh = app
        .create_webhook(&app.owner_token, &agent, "gh", "generic")
        .await;
    let wid = wh["webhookId"].as_str().unwrap();
    let db = app.data_dir.path().join("hookhub.db");
    let before = std::fs::metadata(&db).unwrap().len();

    // 160 KiB of bodies: far below the WAL size at which a commit checkpoints by itself,
    // so only the checkpointer beside the writer can move them into the database file.
    for n in 0..40 {
        let body = format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat(4096));
        let r = app.ingest_signed(wid, body, &[]).await;
        assert_eq!(r.status, 202);
    }
    let mut after = before;
    for _ in 0..100 {
        after = std::fs::metadata(&db).unwrap().len();
        if after >= before + 160 * 1024 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        after >= before + 160 * 1024,
        "database file {before} -> {after} bytes"
    );
}

/// A delivery's provider id is a repeat from the commit that stores it on: within the
/// same writer, for a writer started afresh, never on another webhook, and never for an
/// id that no delivery carried.
#[actix_web::test]
async fn dedupe_keys_are_found_once_committed_and_after_a_restart() {
    let seeded = seeded_store(1).await;
    let (agent, webhook) = &seeded.agents[0];
    let mut conn = seeded.store.batch_writer().await.unwrap();
    let rows: Vec<NewDelivery> = (0..40)
        .map(|i| NewDelivery {
            provider_delivery_id: Some(format!("guid-{i}")),
            ..new_delivery(agent, webhook, 1_000 + i as i64)
        })
        .collect();
    let wid = webhook.as_str();
    let probe = [(wid, "guid-0"), (wid, "guid-39"), (wid, "guid-none")];
    assert!(conn.begin(&probe).await.unwrap().is_empty());
    conn.rollback().await;
    commit_batch(&mut conn, &queued(&rows), &[], &[], 1)
        .await
        .unwrap();

    for conn in [&mut conn, &mut seeded.store.batch_writer().await.unwrap()] {
        let found = conn.begin(&probe).await.unwrap();
        conn.rollback().await;
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[&(webhook.clone(), "guid-0".to_owned())], rows[0].id);
        assert_eq!(found[&(webhook.clone(), "guid-39".to_owned())], rows[39].id);
        let elsewhere = conn
            .begin(&[("whk_01KAAAAAAAAAAAAAAAAAAAAAAA", "guid-0")])
            .await
            .unwrap();
        conn.rollback().await;
        assert!(elsewhere.is_empty(), "a key is per webhook: {elsewhere:?}");
    }
}
