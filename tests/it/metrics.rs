//! `/metrics`: the counters move with what the hub really did.

use std::time::Duration;

use crate::harness::{spawn_app, TestApp};

/// The value of an unlabelled sample, e.g. `hookhub_deliveries_acked_total`.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
            rest.parse().ok()
        })
        .unwrap_or_else(|| panic!("no sample `{name}` in:\n{text}"))
}

async fn scrape(app: &TestApp) -> String {
    let r = app.request("GET", "/metrics", None, None).await;
    assert_eq!(r.status, 200);
    let content_type = r.headers.get("content-type").unwrap().to_str().unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    String::from_utf8(r.raw.to_vec()).unwrap()
}

#[actix_web::test]
async fn counters_follow_an_ingested_and_acked_delivery() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    assert_eq!(sample(&before, "hookhub_deliveries_ingested_total"), 0.0);
    assert_eq!(sample(&before, "hookhub_deliveries_acked_total"), 0.0);
    assert_eq!(sample(&before, "hookhub_connected_agents"), 0.0);

    let (agent, agent_token) = app.create_agent("bot").await;
    let wh = app
        .create_webhook(&app.owner_token, &agent, "gh", "generic")
        .await;
    let wid = wh["webhookId"].as_str().unwrap();

    // Queued while the agent is offline: the backlog shows it.
    let r = app.ingest_signed(wid, r#"{"n":1}"#, &[]).await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let id = r.json["deliveryId"].as_str().unwrap().to_owned();
    let queued = scrape(&app).await;
    assert_eq!(sample(&queued, "hookhub_deliveries_ingested_total"), 1.0);
    assert_eq!(
        sample(&queued, "hookhub_ingest_duration_seconds_count"),
        1.0
    );
    assert_eq!(sample(&queued, "hookhub_backlog_depth"), 1.0);
    assert!(sample(&queued, "hookhub_commit_batch_size_count") >= 1.0);
    assert!(sample(&queued, "hookhub_commit_duration_seconds_sum") > 0.0);

    let mut sock = app.connect(&agent_token).await;
    let d = sock.next_delivery(5).await;
    assert_eq!(d["deliveryId"], id.as_str());
    sock.ack(&id).await;

    // The ack is committed by the writer shortly after it arrives.
    let mut text = String::new();
    for _ in 0..100 {
        text = scrape(&app).await;
        if sample(&text, "hookhub_deliveries_acked_total") >= 1.0 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sample(&text, "hookhub_deliveries_acked_total"), 1.0);
    assert_eq!(sample(&text, "hookhub_deliveries_delivered_total"), 1.0);
    assert_eq!(sample(&text, "hookhub_post_to_agent_seconds_count"), 1.0);
    assert_eq!(sample(&text, "hookhub_connected_agents"), 1.0);
    assert_eq!(sample(&text, "hookhub_backlog_depth"), 0.0);
    assert_eq!(sample(&text, "hookhub_oldest_queued_age_seconds"), 0.0);
    assert_eq!(sample(&text, "hookhub_deliveries_rejected_total"), 0.0);
}
