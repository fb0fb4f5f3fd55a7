//! The delivery writer applies acks and sends in batches: every one still lands.
#![allow(clippy::unwrap_used)]
mod common;

use std::time::Duration;

use common::spawn_app;

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
