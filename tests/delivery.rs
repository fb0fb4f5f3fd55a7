#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Realtime delivery: ingest, the agent socket, the offline backlog, acks and activity.
mod common;

use common::spawn_app;

#[actix_web::test]
async fn online_agent_gets_a_delivery_and_acks_it() {
    let app = spawn_app().await;
    let (agent, agent_token) = app.create_agent("bot").await;
    let wh = app
        .create_webhook(&app.owner_token, &agent, "gh", "generic")
        .await;
    let wid = wh["webhookId"].as_str().unwrap();
    let mut sock = app.connect(&agent_token).await;

    let r = app
        .ingest(wid, r#"{"type":"ping","n":1}"#, &[("x-custom", "yes")])
        .await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let id = r.json["deliveryId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("dlv_"));

    let d = sock.next_delivery(5).await;
    assert_eq!(d["deliveryId"], id.as_str());
    assert_eq!(d["webhookId"], wid);
    assert_eq!(d["provider"], "generic");
    assert_eq!(d["attempt"], 1);
    assert_eq!(d["body"], r#"{"type":"ping","n":1}"#);
    assert_eq!(d["bodyEncoding"], "utf8");
    assert_eq!(d["headers"]["x-custom"], "yes");
    assert!(d["receivedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(d["signature"]["webhook-id"], id.as_str());
    sock.ack(&id).await;

    // The ack is recorded.
    let path = format!("/v1/agents/{agent}/webhooks/{wid}/deliveries");
    let mut status = String::new();
    for _ in 0..50 {
        let list = app.get(&path, &app.owner_token).await;
        status = list.json["deliveries"][0]["status"]
            .as_str()
            .unwrap()
            .to_owned();
        if status == "acked" {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, "acked");
}
