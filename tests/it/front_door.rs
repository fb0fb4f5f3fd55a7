//! The front door under hostile senders: bodies that never finish, a sender holding as
//! many half-sent requests as it can open, a throttled sender's connection. Spoken as raw
//! HTTP/1.1 over TCP where a client library would not misbehave on purpose.

use std::{
    net::{IpAddr, SocketAddr},
    process::Stdio,
    time::Duration,
};

use actix_web::rt::time::timeout;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

use crate::harness::{
    process::{free_port, rss_bytes, HubProcess},
    spawn_app_with, HubClient,
};

/// Connects from `from` (any address of the loopback range) to the hub.
async fn connect_from(from: &str, port: u16) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))?;
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
}

/// Reads one response: its status and everything up to the end of its body.
async fn read_response(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let status = head.split_whitespace().nth(1)?.parse().ok()?;
                return Some((status, head.to_owned()));
            }
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Whether the peer has closed the connection (reads end), within `secs`.
async fn closed_within(stream: &mut TcpStream, secs: u64) -> bool {
    let mut rest = Vec::new();
    matches!(
        timeout(Duration::from_secs(secs), stream.read_to_end(&mut rest)).await,
        Ok(Ok(_))
    )
}

/// The head of a post declaring a body of `length` bytes, and the body's first bytes.
fn partial_post_of(webhook_id: &str, length: u64) -> String {
    format!(
        "POST /v1/hooks/{webhook_id} HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n{{\"partial\":"
    )
}

fn partial_post(webhook_id: &str) -> String {
    partial_post_of(webhook_id, 20_000_000)
}

#[actix_web::test]
async fn a_body_that_stops_arriving_gets_408_and_its_connection_is_closed() {
    let app = spawn_app_with(|c| c.body_timeout = Duration::from_secs(1)).await;
    let (agent, _) = app.create_agent("bot").await;
    let wh = app
        .create_webhook(&app.owner_token, &agent, "hook", "generic")
        .await;
    let mut stream = connect_from("127.0.0.1", app.port).await.unwrap();
    stream
        .write_all(partial_post(wh["webhookId"].as_str().unwrap()).as_bytes())
        .await
        .unwrap();
    let (status, head) = timeout(Duration::from_secs(10), read_response(&mut stream))
        .await
        .expect("an answer before the sender finishes")
        .expect("a response");
    assert_eq!(status, 408, "{head}");
    assert!(
        closed_within(&mut stream, 5).await,
        "the connection is closed"
    );
}

/// A hub with a file limit of 256 and senders on twenty addresses that open as many
/// half-sent requests as they can, declaring bodies of 20 MB and of 100 KB: the hub stays below its
/// file limit and its memory, and keeps answering everyone else.
#[actix_web::test]
async fn senders_holding_every_connection_they_can_open_do_not_starve_the_others() {
    let dir = tempfile::tempdir().unwrap();
    // The address space is capped too: room for the hub, not for a buffer of the size each
    // half-sent body declares.
    // The webhooks' rate is low, so most of the attackers' posts are told to come back
    // (429), and those hold their connections too while the hub reads their bodies away.
    let hub = HubProcess::start_under(
        &["prlimit", "--nofile=256:256", "--as=1500000000"],
        dir.path(),
        free_port(),
        &["--rate-limit=1", "--rate-burst=100"],
        Stdio::null(),
        "warn",
    );
    let client = HubClient::new(hub.port, hub.owner_token.as_deref().unwrap());
    let (agent, token) = client.create_agent("bot").await;
    let target = client
        .create_webhook(&client.owner_token, &agent, "attacked", "generic")
        .await;
    let other = client
        .create_webhook(&client.owner_token, &agent, "other", "generic")
        .await;
    let target = target["webhookId"].as_str().unwrap().to_owned();
    let other = other["webhookId"].as_str().unwrap().to_owned();

    // The attackers, from addresses of their own, send a head and a few bytes on as many
    // connections as they can, and keep them all.
    let rss_before = rss_bytes(hub.pid());
    let mut held = Vec::new();
    for i in 0..600 {
        let from = format!("127.0.0.{}", 2 + i % 20);
        let Ok(Ok(mut stream)) =
            timeout(Duration::from_secs(2), connect_from(&from, hub.port)).await
        else {
            break;
        };
        // Bodies of 20 MB, and of 100 KB, small enough that a 429 reads them away.
        let length = if i % 2 == 0 { 20_000_000 } else { 100_000 };
        if stream
            .write_all(partial_post_of(&target, length).as_bytes())
            .await
            .is_err()
        {
            break;
        }
        held.push(stream);
    }
    assert!(
        held.len() > 256,
        "the attackers opened {} connections",
        held.len()
    );
    let grown = rss_bytes(hub.pid()).saturating_sub(rss_before);
    assert!(
        grown < 200 << 20,
        "memory grew by {grown} bytes for half-sent bodies"
    );

    let healthz = timeout(
        Duration::from_secs(5),
        client.client.get(client.url("/healthz")).send(),
    )
    .await
    .expect("/healthz answers while the attacker holds its connections")
    .unwrap();
    assert_eq!(healthz.status(), 200);
    let r = timeout(
        Duration::from_secs(5),
        client.ingest_signed(&other, r#"{"n":1}"#, &[]),
    )
    .await
    .expect("ingest on another webhook answers");
    assert_eq!(r.status, 202, "{:?}", r.json);
    let mut sock = timeout(Duration::from_secs(5), client.connect(&token))
        .await
        .expect("an agent connects");
    let d = sock.next_delivery(5).await;
    assert_eq!(d["webhookId"], other.as_str());
    drop(held);
}

#[actix_web::test]
async fn a_throttled_sender_keeps_its_connection_for_the_next_request() {
    let app = spawn_app_with(|c| {
        c.rate_limit = 0.01;
        c.rate_burst = 1;
    })
    .await;
    let (_, _, wid) = app.agent_with_webhook().await;
    let wid = wid.as_str();
    // The webhook's one token.
    let r = app.ingest_signed(wid, r#"{"n":1}"#, &[]).await;
    assert_eq!(r.status, 202);

    let mut stream = connect_from("127.0.0.1", app.port).await.unwrap();
    let body = r#"{"n":2}"#;
    let post = format!(
        "POST /v1/hooks/{wid} HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(post.as_bytes()).await.unwrap();
    let (status, head) = read_response(&mut stream).await.expect("a response");
    assert_eq!(status, 429, "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after"), "{head}");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
        .await
        .unwrap();
    let next = timeout(Duration::from_secs(5), read_response(&mut stream))
        .await
        .expect("an answer on the same connection");
    assert_eq!(next.map(|(s, _)| s), Some(200));
}

/// Connections that send nothing at all, from one address: past its share they are shut
/// as soon as they are accepted, and another address is answered as usual.
#[actix_web::test]
async fn an_address_holding_idle_connections_gets_only_its_share() {
    let app = spawn_app_with(|c| c.max_connections_per_ip = 10).await;
    let mut idle = Vec::new();
    for _ in 0..30 {
        idle.push(connect_from("127.0.0.2", app.port).await.unwrap());
    }
    let mut shut = 0;
    for stream in &mut idle {
        let mut byte = [0u8; 1];
        // A shut connection reads its end at once; a counted one has nothing to say yet.
        if let Ok(Ok(0)) = timeout(Duration::from_millis(300), stream.read(&mut byte)).await {
            shut += 1;
        }
    }
    assert_eq!(shut, 20, "all but the address's ten were shut");
    let r = app.get("/healthz", &app.owner_token).await;
    assert_eq!(r.status, 200);
    // Once its connections end, the address may connect again.
    drop(idle);
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from("127.0.0.2", app.port).await.unwrap();
    again
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
        .await
        .unwrap();
    let answer = timeout(Duration::from_secs(5), read_response(&mut again)).await;
    assert_eq!(answer.unwrap().map(|(s, _)| s), Some(200));
}
