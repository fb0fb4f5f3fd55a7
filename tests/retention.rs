#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Retention works in bounded steps, so a large sweep never holds the writer for long.

use std::sync::Arc;

use bytes::Bytes;
use hookhub::{
    ids::{AccountId, AgentId, DeliveryId, WebhookId},
    providers::Provider,
    store::{
        deliveries::{self, NewDelivery, RETENTION_STEP},
        DeliveryStatus, SealedSecrets, Store,
    },
};
use sqlx::Connection;

#[actix_web::test]
async fn retention_proceeds_in_bounded_steps() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let (account, agent, webhook) = (
        AccountId::generate(),
        AgentId::generate(),
        WebhookId::generate(),
    );
    store.insert_account(&account, "a", b"h1", 0).await.unwrap();
    store
        .insert_agent(&agent, &account, "b", b"h2", 0)
        .await
        .unwrap();
    let owned = store.owned_agent(&account, &agent).await.unwrap().unwrap();
    store
        .insert_webhook(
            &owned,
            &webhook,
            "w",
            Provider::Generic,
            "user",
            b"sealed",
            0,
        )
        .await
        .unwrap();

    let old = 1_000; // ms since the epoch: long past any retention
    let acked = RETENTION_STEP as usize * 2 + 17;
    let unacked = RETENTION_STEP as usize + 3;
    let mut conn = store.dedicated_connection().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    for i in 0..acked + unacked {
        let d = NewDelivery {
            id: DeliveryId::generate(),
            webhook_id: webhook.clone(),
            agent_id: agent.clone(),
            provider: Provider::Generic,
            event: None,
            provider_delivery_id: None,
            verified: true,
            received_at: old,
            headers: "{}".to_owned(),
            body: Bytes::from_static(b"x"),
            secrets: Arc::new(SealedSecrets {
                signing: vec![],
                previous: None,
                previous_until: None,
                provider: None,
            }),
        };
        let status = if i < acked {
            DeliveryStatus::Acked
        } else {
            DeliveryStatus::Queued
        };
        deliveries::insert(&mut tx, &d, status, Some(i as i64 + 1), None)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    // The cutoff for expired rows is earlier still: only acked ones are pruned now.
    let now = 10_000_000;
    let mut steps = Vec::new();
    loop {
        let mut tx = conn.begin().await.unwrap();
        let (e, p) = deliveries::apply_retention(&mut tx, now, 0).await.unwrap();
        tx.commit().await.unwrap();
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
    assert_eq!(store.backlog_depth(&agent).await.unwrap(), 0);
}
