//! Retention works in bounded steps, so a large sweep never holds the writer for long.

use hookhub::domain::DeliveryStatus;
use hookhub::store::{BatchWriter, RETENTION_STEP};

use crate::harness::store::{new_delivery, seeded_store};

#[actix_web::test]
async fn retention_proceeds_in_bounded_steps() {
    let seeded = seeded_store(1).await;
    let (store, (agent, webhook)) = (&seeded.store, &seeded.agents[0]);
    let old = 1_000; // ms since the epoch: long past any retention
    let acked = RETENTION_STEP as usize * 2 + 17;
    let unacked = RETENTION_STEP as usize + 3;
    let mut conn = store.batch_writer().await.unwrap();
    conn.begin(&[]).await.unwrap();
    for i in 0..acked + unacked {
        let d = new_delivery(agent, webhook, old);
        let status = if i < acked {
            DeliveryStatus::Acked
        } else {
            DeliveryStatus::Queued
        };
        conn.insert(&d, status, Some(i as i64 + 1), None)
            .await
            .unwrap();
    }
    conn.commit().await.unwrap();

    // The cutoff for expired rows is earlier still: only acked ones are pruned now.
    let now = 10_000_000;
    let mut steps = Vec::new();
    loop {
        conn.begin(&[]).await.unwrap();
        let (e, p) = conn.apply_retention(now, 0).await.unwrap();
        conn.commit().await.unwrap();
        steps.push((e, p));
        if e < RETENTION_STEP && p < RETENTION_STEP {
            break;
        }
    }
    assert!(steps
        .iter()
        .all(|&(e, p)| e <= RETENTION_STEP && p <= RETENTION_STEP));
    let expired: u64 = steps.iter().map(|s| s.0).sum();
    let pruned: u64 = steps.iter().map(|s| s.1).sum();
    assert_eq!(expired, unacked as u64);
    assert_eq!(pruned, acked as u64);
    assert!(
        steps.len() >= 3,
        "a sweep of {} rows took {} steps",
        acked + unacked,
        steps.len()
    );
    assert_eq!(store.backlog_depth(agent).await.unwrap(), 0);
    // A pruned delivery takes its headers and body with it.
    let (rows, payloads): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM deliveries), (SELECT count(*) FROM delivery_payloads)",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(rows, unacked as i64);
    assert_eq!(payloads, rows);
}

/// Dedupe keys go with retention: those of deliveries received before the cutoff are
/// deleted, whatever became of the delivery (expired here), and the rest stay.
#[actix_web::test]
async fn retention_drops_the_dedupe_keys_of_deliveries_received_before_its_cutoff() {
    const DAY: i64 = 86_400_000;
    let seeded = seeded_store(1).await;
    let (store, (agent, webhook)) = (&seeded.store, &seeded.agents[0]);
    let mut conn = store.batch_writer().await.unwrap();
    conn.begin(&[]).await.unwrap();
    for (i, received_at) in [DAY + 5, 2 * DAY + 5, 3 * DAY + 5].into_iter().enumerate() {
        let d = hookhub::domain::NewDelivery {
            provider_delivery_id: Some(format!("guid-{i}")),
            ..new_delivery(agent, webhook, received_at)
        };
        conn.insert(&d, DeliveryStatus::Queued, Some(i as i64 + 1), None)
            .await
            .unwrap();
    }
    conn.commit().await.unwrap();
    conn.begin(&[]).await.unwrap();
    conn.apply_retention(2 * DAY + 10, 0).await.unwrap();
    conn.commit().await.unwrap();
    let kept: Vec<i64> = sqlx::query_scalar("SELECT seq FROM delivery_dedupe ORDER BY seq")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(kept, [3]);
    let wid = webhook.as_str();
    let found = conn
        .begin(&[(wid, "guid-0"), (wid, "guid-1"), (wid, "guid-2")])
        .await
        .unwrap();
    conn.rollback().await;
    let mut found: Vec<String> = found.into_keys().map(|(_, pid)| pid).collect();
    found.sort();
    assert_eq!(found, ["guid-2"]);
}
