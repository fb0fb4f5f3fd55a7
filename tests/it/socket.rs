//! The agent socket's wire (RFC 6455) as a hostile or unusual client speaks it: frames over
//! the limit, fragmented messages, protocol violations. Frames the client codec would not
//! produce are written to the socket as raw bytes.

use std::time::Duration;

use actix_http::ws::Item;
use actix_web::rt::time::sleep;
use awc::ws::{self, CloseCode};
use bytes::Bytes;
use futures_util::SinkExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::harness::{
    process::{free_port, rss_bytes, HubProcess},
    spawn_app, AgentSocket, HubClient, Incoming,
};

const TEXT: u8 = 0x1;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

/// The header of a client frame (masked, with an all-zero key, so the payload that
/// follows goes as it is) declaring `len` bytes of payload.
fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 | opcode } else { opcode }];
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out
}

fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(fin, opcode, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

async fn send_raw(sock: &mut AgentSocket, bytes: &[u8]) {
    let io = sock.framed.io_mut();
    io.write_all(bytes).await.expect("raw bytes written");
    io.flush().await.unwrap();
}

/// The close the hub sends next, skipping anything before it; fails if the socket ends
/// without one or nothing comes within 10 s.
async fn expect_close(sock: &mut AgentSocket, code: CloseCode) -> String {
    loop {
        match sock.next_incoming(10).await {
            Some(Incoming::Json(_)) => continue,
            Some(Incoming::Close(Some(reason))) => {
                assert_eq!(reason.code, code, "{reason:?}");
                let description = reason.description.unwrap_or_default();
                assert!(!description.is_empty(), "a close with a reason");
                return description;
            }
            Some(Incoming::Close(None)) => panic!("closed without a code; wanted {code:?}"),
            Some(Incoming::Ended) => panic!("socket ended without a close; wanted {code:?}"),
            None => panic!("no close within 10 s; wanted {code:?}"),
        }
    }
}

async fn agent_socket(hub: &HubClient) -> (String, String, AgentSocket) {
    let (agent, token) = hub.create_agent("bot").await;
    let sock = hub.connect(&token).await;
    (agent, token, sock)
}

#[actix_web::test]
async fn a_frame_declared_over_the_limit_closes_1009_before_its_payload_arrives() {
    let app = spawn_app().await;
    let (_, _, mut sock) = agent_socket(&app).await;
    // A gigabyte declared, a kilobyte sent: the hub must not wait for (or hold) the rest.
    let mut bytes = header(true, TEXT, 1 << 30);
    bytes.extend_from_slice(&[b'x'; 1024]);
    send_raw(&mut sock, &bytes).await;
    let reason = expect_close(&mut sock, CloseCode::Size).await;
    assert!(reason.contains("limit"), "{reason}");
    assert!(matches!(
        sock.next_incoming(10).await,
        Some(Incoming::Ended)
    ));
}

#[actix_web::test]
async fn a_whole_frame_over_the_limit_closes_1009_with_a_reason() {
    let app = spawn_app().await;
    let (_, _, mut sock) = agent_socket(&app).await;
    let big = "x".repeat(1024 * 1024 + 1);
    sock.framed
        .send(ws::Message::Text(big.into()))
        .await
        .unwrap();
    expect_close(&mut sock, CloseCode::Size).await;
}

#[actix_web::test]
async fn a_fragmented_ack_is_applied() {
    let app = spawn_app().await;
    let (agent, token, wid) = app.agent_with_webhook().await;
    let wid = wid.as_str();
    let r = app.ingest_signed(wid, r#"{"n":1}"#, &[]).await;
    assert_eq!(r.status, 202);
    let mut sock = app.connect(&token).await;
    let d = sock.next_delivery(10).await;
    let id = d["deliveryId"].as_str().unwrap();
    let ack = json!({"type": "ack", "deliveryId": id}).to_string();
    let (a, rest) = ack.split_at(10);
    let (b, c) = rest.split_at(10);
    for item in [
        Item::FirstText(Bytes::copy_from_slice(a.as_bytes())),
        Item::Continue(Bytes::copy_from_slice(b.as_bytes())),
        Item::Last(Bytes::copy_from_slice(c.as_bytes())),
    ] {
        sock.framed
            .send(ws::Message::Continuation(item))
            .await
            .unwrap();
    }
    let mut status = String::new();
    for _ in 0..100 {
        status = app.activity(&agent, wid).await[0]["status"]
            .as_str()
            .unwrap()
            .to_owned();
        if status == "acked" {
            break;
        }
        sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "acked");
}

#[actix_web::test]
async fn a_fragmented_call_is_answered_with_a_ping_between_its_fragments() {
    let app = spawn_app().await;
    let (_, _, mut sock) = agent_socket(&app).await;
    let call = json!({"type": "call", "id": "c1", "tool": "list_webhooks", "args": {}}).to_string();
    let (a, b) = call.split_at(call.len() / 2);
    send_raw(&mut sock, &frame(false, TEXT, a.as_bytes())).await;
    // Control frames may come between the fragments of a message.
    send_raw(&mut sock, &frame(true, PING, b"hi")).await;
    send_raw(&mut sock, &frame(true, CONTINUATION, b.as_bytes())).await;
    let result = sock.next_json(10).await;
    assert_eq!(result["type"], "result", "{result}");
    assert_eq!(result["id"], "c1");
    assert_eq!(result["ok"], true, "{result}");
}

#[actix_web::test]
async fn fragments_adding_up_past_the_limit_close_1009() {
    let app = spawn_app().await;
    let (_, _, mut sock) = agent_socket(&app).await;
    let half = vec![b'x'; 600 * 1024];
    send_raw(&mut sock, &frame(false, TEXT, &half)).await;
    send_raw(&mut sock, &frame(true, CONTINUATION, &half)).await;
    expect_close(&mut sock, CloseCode::Size).await;
}

#[actix_web::test]
async fn protocol_violations_fail_the_connection_with_their_code() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("bot").await;
    let mut close_999 = 999u16.to_be_bytes().to_vec();
    close_999.extend_from_slice(b"bye");
    let cases: Vec<(&str, Vec<u8>, CloseCode)> = vec![
        (
            "a continuation with no message started",
            frame(true, CONTINUATION, b"orphan"),
            CloseCode::Protocol,
        ),
        (
            "a fragmented ping",
            frame(false, PING, b"hi"),
            CloseCode::Protocol,
        ),
        (
            "a ping over 125 bytes",
            frame(true, PING, &[b'p'; 126]),
            CloseCode::Protocol,
        ),
        (
            "a close with code 999",
            frame(true, CLOSE, &close_999),
            CloseCode::Protocol,
        ),
        (
            "a text frame that is not UTF-8",
            frame(true, TEXT, &[b'{', 0xff, 0xfe, b'}']),
            CloseCode::Invalid,
        ),
        (
            "a new message inside a fragmented one",
            [frame(false, TEXT, b"{\"type\""), frame(true, TEXT, b"{}")].concat(),
            CloseCode::Protocol,
        ),
    ];
    for (what, bytes, code) in cases {
        let mut sock = app.connect(&token).await;
        send_raw(&mut sock, &bytes).await;
        let reason = expect_close(&mut sock, code).await;
        println!("{what}: {reason}");
    }
}

/// Large deliveries for an agent that connects and then reads nothing: the hub's memory
/// must stay within a few deliveries' worth, whatever the window's count allows, and come
/// back down once the agent is gone.
#[actix_web::test]
async fn memory_per_agent_is_bounded_in_bytes_and_returned_when_it_leaves() {
    const BODY: usize = 10 * 1024 * 1024;
    const COUNT: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::start(dir.path(), free_port(), &[]);
    let client = HubClient::new(hub.port, hub.owner_token.as_deref().unwrap());
    let (agent, token) = client.create_agent("slow reader").await;
    let wh = client
        .create_webhook(&client.owner_token, &agent, "big", "generic")
        .await;
    let wid = wh["webhookId"].as_str().unwrap();
    let body = "x".repeat(BODY);
    for _ in 0..COUNT {
        let r = client.ingest_signed(wid, body.clone(), &[]).await;
        assert_eq!(r.status, 202, "{:?}", r.json);
    }
    drop(body);
    sleep(Duration::from_millis(500)).await;
    let before = rss_bytes(hub.pid());

    // Connect and read nothing: the hub sends until the socket's buffers are full.
    let sock = client.connect(&token).await;
    let mut peak = before;
    for _ in 0..30 {
        sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss_bytes(hub.pid()));
    }
    let grown = peak.saturating_sub(before);
    println!("RSS before {before}, peak while connected {peak}: grew {grown} bytes");
    // The default byte window holds one 10 MiB delivery in flight and one read ahead:
    // with the frame, the connection's write buffer and the copies made on the way (the
    // frame's encoding, the row read from the store), 30 to 65 MB at the moments sampled.
    // A window of 100 by count alone takes all twelve: 170 MB.
    assert!(
        grown < (8 * BODY) as u64,
        "memory grew by {grown} bytes for one agent; {COUNT} deliveries of {BODY} are queued"
    );

    drop(sock);
    let mut after = u64::MAX;
    for _ in 0..50 {
        sleep(Duration::from_millis(100)).await;
        after = rss_bytes(hub.pid());
        if after < before + (2 * BODY) as u64 {
            break;
        }
    }
    println!("RSS after the agent left: {after}");
    assert!(
        after < before + (2 * BODY) as u64,
        "memory not returned after the agent left: {before} before, {after} after"
    );
}

/// With a byte window smaller than some deliveries, each large one goes alone and the
/// small ones around it in as many as fit: all arrive, in order, whether read from the
/// backlog or pushed live.
#[actix_web::test]
async fn deliveries_of_mixed_sizes_pass_a_small_byte_window_in_order() {
    let app = crate::harness::spawn_app_with(|c| {
        c.window = 10;
        c.window_bytes = 1000;
    })
    .await;
    let (_, token, wid) = app.agent_with_webhook().await;
    let wid = wid.as_str();
    let sizes = [300, 300, 300, 3000, 300, 300, 2500, 2500, 300, 300, 300];
    let body = |n: usize, size: usize| format!("{n:04}{}", "x".repeat(size - 4));
    // The first half waits in the backlog, the rest comes while the agent is connected.
    for (n, size) in sizes.iter().enumerate().take(6) {
        let r = app.ingest_signed(wid, body(n, *size), &[]).await;
        assert_eq!(r.status, 202);
    }
    let mut sock = app.connect(&token).await;
    for (n, size) in sizes.iter().enumerate().skip(6) {
        let r = app.ingest_signed(wid, body(n, *size), &[]).await;
        assert_eq!(r.status, 202);
    }
    for (n, size) in sizes.iter().enumerate() {
        let d = sock.next_delivery(10).await;
        assert_eq!(d["body"], body(n, *size), "delivery {n}");
        sock.ack(d["deliveryId"].as_str().unwrap()).await;
    }
    assert!(
        sock.next_incoming(1).await.is_none(),
        "nothing more, nothing twice"
    );
}
