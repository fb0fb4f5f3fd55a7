//! `hookhub listen`, run as the real binary against a real hub: forwarding into a local
//! app that verifies signatures, retrying an app that fails, JSON lines on stdout, and a
//! hub restart in the middle.

use std::{
    collections::{HashMap, VecDeque},
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{rt::time::timeout, web, App, HttpRequest, HttpResponse, HttpServer};
use base64::{engine::general_purpose::STANDARD, Engine};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::harness::{
    process::{free_port, HubProcess},
    senders::{github_signature, standard_webhook_headers},
    spawn_app, wait_status, HubClient,
};

// ---------------------------------------------------------------------------------------
// A child process with its stdout as lines and its stderr kept for failure messages.

struct Proc {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookhub"));
        cmd.args(args)
            .env_remove("HOOKHUB_URL")
            .env_remove("HOOKHUB_AGENT_TOKEN")
            .env("RUST_LOG", "info,hookhub=debug,sqlx=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("hookhub starts");
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let kept = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]);
                if std::env::var_os("TEST_LOG").is_some() {
                    eprint!("{text}");
                }
                kept.lock().unwrap().push_str(&text);
            }
        });
        Self {
            child,
            lines,
            stderr,
        }
    }

    /// The next line on stdout; panics, showing stderr, after `secs` without one.
    async fn line(&mut self, secs: u64) -> String {
        match timeout(Duration::from_secs(secs), self.lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!("stdout closed; stderr:\n{}", self.stderr()),
            Err(_) => panic!("no line within {secs}s; stderr:\n{}", self.stderr()),
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn listen(hub: &str, token: &str, args: &[&str]) -> Proc {
    listen_with_env(hub, token, args, &[])
}

fn listen_with_env(hub: &str, token: &str, args: &[&str], envs: &[(&str, &str)]) -> Proc {
    let mut all = vec!["listen", "--url", hub, "--max-backoff", "1s"];
    all.extend_from_slice(args);
    let mut all_envs = vec![("HOOKHUB_AGENT_TOKEN", token)];
    all_envs.extend_from_slice(envs);
    Proc::spawn(&all, &all_envs)
}

// ---------------------------------------------------------------------------------------
// The local app: records every request and answers with the next scripted status (200
// once the script runs out).

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HashMap<String, String>,
    body: Bytes,
    status: u16,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }
}

struct AppState {
    script: Mutex<VecDeque<u16>>,
    seen: mpsc::UnboundedSender<Received>,
}

struct LocalApp {
    url: String,
    seen: mpsc::UnboundedReceiver<Received>,
}

impl LocalApp {
    async fn start(script: &[u16]) -> Self {
        let (tx, seen) = mpsc::unbounded_channel();
        let state = web::Data::new(AppState {
            script: Mutex::new(script.iter().copied().collect()),
            seen: tx,
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/webhook"),
            seen,
        }
    }

    async fn next(&mut self, secs: u64) -> Received {
        timeout(Duration::from_secs(secs), self.seen.recv())
            .await
            .expect("the app got a request in time")
            .unwrap()
    }
}

async fn receive(req: HttpRequest, body: Bytes, state: web::Data<AppState>) -> HttpResponse {
    let status = state.script.lock().unwrap().pop_front().unwrap_or(200);
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let _ = state.seen.send(Received {
        path: req.path().to_owned(),
        headers,
        body,
        status,
    });
    let mut answer = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    if status >= 400 {
        answer.body(format!("{{\"error\": \"the test app answers {status}\"}}"))
    } else {
        answer.finish()
    }
}

/// What a receiver does with any Standard Webhooks library: HMAC-SHA256 of
/// `id.timestamp.body` keyed by the secret's base64 after `whsec_`, one of the `v1,`
/// signatures matching.
fn standard_webhooks_valid(secret: &str, r: &Received) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(r.header("webhook-id").as_bytes());
    mac.update(b".");
    mac.update(r.header("webhook-timestamp").as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    r.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

/// POSTs to a webhook URL; the delivery id of the 202.
async fn post(
    client: &awc::Client,
    url: &str,
    body: &[u8],
    headers: &[(String, String)],
) -> String {
    let mut req = client.post(url);
    for (k, v) in headers {
        req = req.insert_header((k.as_str(), v.as_str()));
    }
    let mut resp = req
        .send_body(Bytes::copy_from_slice(body))
        .await
        .expect("ingest sent");
    let json: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(resp.status().as_u16(), 202, "{json}");
    json["deliveryId"].as_str().unwrap().to_owned()
}

/// POSTs over a bare socket, for what an HTTP client will not send: awc writes its own
/// `Connection` header, and a sender's may name other headers as hop-by-hop. The delivery
/// id of the 202.
async fn post_raw(port: u16, path: &str, body: &[u8], headers: &[(String, String)]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let parsed = loop {
        let n = timeout(Duration::from_secs(20), stream.read(&mut chunk))
            .await
            .expect("the hub answered in time")
            .unwrap();
        assert!(
            n > 0,
            "the hub closed: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        let Some((head, rest)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .expect("a content-length");
        if rest.len() >= length {
            break (head.to_owned(), rest[..length].to_owned());
        }
    };
    let (head, body) = parsed;
    assert!(head.starts_with("HTTP/1.1 202"), "{head}\n{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    json["deliveryId"].as_str().unwrap().to_owned()
}

async fn post_generic(app: &HubClient, webhook: &Value, body: &[u8]) -> String {
    let secret = webhook["signingSecret"].as_str().unwrap();
    let url = webhook["url"].as_str().unwrap();
    post(
        &app.client,
        url,
        body,
        &standard_webhook_headers(secret, body),
    )
    .await
}

/// The value after `label` on a line of the `--create` block.
fn field_after(line: &str, label: &str) -> Option<String> {
    line.trim()
        .strip_prefix(label)
        .map(|rest| rest.trim().to_owned())
}

// ---------------------------------------------------------------------------------------

#[actix_web::test]
async fn forward_to_hands_a_github_event_to_the_app_signed_both_ways() {
    let app = spawn_app().await;
    let (agent, token) = app.create_agent("dev").await;
    let mut local = LocalApp::start(&[]).await;
    let mut listen = listen(
        &app.base,
        &token,
        &[
            "--create",
            "GitHub pushes",
            "--provider",
            "github",
            "--forward-to",
            &local.url,
        ],
    );

    // The whole setup in one command: the webhook's URL and secret, printed once.
    let (mut url, mut secret) = (None, None);
    // The block ends with an empty line.
    loop {
        let line = listen.line(20).await;
        if line.is_empty() {
            break;
        }
        url = url.or_else(|| field_after(&line, "URL:"));
        secret = secret.or_else(|| field_after(&line, "Signing secret:"));
    }
    let (url, secret) = (url.unwrap(), secret.unwrap());
    assert!(secret.starts_with("whsec_"), "{secret}");
    let webhook_id = url.rsplit('/').next().unwrap().to_owned();
    assert_eq!(url, format!("{}/v1/hooks/{webhook_id}", app.base));
    let listed = app
        .get(
            &format!("/v1/agents/{agent}/webhooks/{webhook_id}"),
            &app.owner_token,
        )
        .await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json["provider"], "github");
    assert_eq!(listed.json["createdBy"], "agent");
    assert_eq!(listed.json["name"], "GitHub pushes");

    // GitHub sends a push, signed with the secret as GitHub does.
    let push = br#"{"ref":"refs/heads/main","commits":[{"id":"abc"}]}"#;
    // Each event has its own X-GitHub-Delivery; the hub drops a repeated one as a duplicate.
    let headers = |body: &[u8], gh_delivery: &str| {
        vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            (
                "user-agent".to_owned(),
                "GitHub-Hookshot/5a1b2c3".to_owned(),
            ),
            ("x-github-event".to_owned(), "push".to_owned()),
            ("x-github-delivery".to_owned(), gh_delivery.to_owned()),
            (
                "x-hub-signature-256".to_owned(),
                github_signature(&secret, body),
            ),
        ]
    };
    let gh_delivery = ulid::Ulid::new().to_string();
    let first = post(&app.client, &url, push, &headers(push, &gh_delivery)).await;
    let r = local.next(20).await;
    assert_eq!(r.path, "/webhook");
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], push, "the exact body");
    // The provider's headers, so the app's GitHub verification works as in production...
    assert_eq!(r.header("x-github-event"), "push");
    assert_eq!(r.header("x-github-delivery"), gh_delivery);
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("user-agent"), "GitHub-Hookshot/5a1b2c3");
    assert_eq!(
        r.header("x-hub-signature-256"),
        github_signature(&secret, &r.body)
    );
    // ...and the hub's Standard Webhooks headers, verified as any library would.
    assert_eq!(r.header("webhook-id"), first);
    assert!(standard_webhooks_valid(&secret, &r), "{:?}", r.headers);
    assert!(!standard_webhooks_valid(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        &r
    ));
    // What described the hop to the hub did not travel on.
    assert_eq!(
        r.header("host"),
        local
            .url
            .trim_start_matches("http://")
            .trim_end_matches("/webhook")
    );
    assert_eq!(r.header("content-length"), push.len().to_string());

    // A body that is not UTF-8 arrives byte for byte.
    let raw: Vec<u8> = vec![0xff, 0xfe, 0x00, 0x01, 0x80, b'{'];
    let second = post(
        &app.client,
        &url,
        &raw,
        &headers(&raw, &ulid::Ulid::new().to_string()),
    )
    .await;
    let r = local.next(20).await;
    assert_eq!(&r.body[..], &raw[..]);
    assert_eq!(r.header("webhook-id"), second);
    assert!(standard_webhooks_valid(&secret, &r));

    // One line per delivery: time, webhook, event, the app's status, latency, id.
    for id in [&first, &second] {
        let acked = wait_status(&app, &token, &webhook_id, id, "acked").await;
        let line = listen.line(10).await;
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols.len(), 6, "{line}");
        assert!(cols[0].ends_with('Z') && cols[0].contains('T'), "{line}");
        assert_eq!(cols[1], webhook_id, "{line}");
        assert_eq!(cols[2], acked["event"].as_str().unwrap_or("-"), "{line}");
        assert_eq!(cols[3], "200", "{line}");
        assert!(cols[4].ends_with("ms"), "{line}");
        assert_eq!(cols[5], id.as_str(), "{line}");
    }
}

/// The attempts of a delivery as its history has them: (attempt, outcome, app's status).
async fn history(app: &HubClient, token: &str, wid: &str, id: &str) -> Vec<(i64, String, Value)> {
    let r = app
        .get(
            &format!("/v1/agents/me/webhooks/{wid}/deliveries/{id}"),
            token,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    r.json["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["attempt"].as_i64().unwrap(),
                h["outcome"].as_str().unwrap_or("out").to_owned(),
                h["result"]["status"].clone(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn an_app_that_answers_503_is_retried_by_the_hub_without_holding_up_the_next() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("dev").await;
    let webhook = app.create_webhook(&token, "me", "w", "generic").await;
    let wid = webhook["webhookId"].as_str().unwrap();
    // The first try fails, as an app with a passing outage would; then 204.
    let mut local = LocalApp::start(&[503, 204, 204]).await;
    let mut listen = listen(&app.base, &token, &["--forward-to", &local.url]);

    let a = post_generic(&app, &webhook, br#"{"type":"order.created","n":1}"#).await;
    let b = post_generic(&app, &webhook, br#"{"type":"order.created","n":2}"#).await;

    let mut got = Vec::new();
    for _ in 0..3 {
        let r = local.next(20).await;
        got.push((r.header("webhook-id").to_owned(), r.status));
    }
    // The next one went on while the first waited for its retry.
    assert_eq!(got, [(a.clone(), 503), (b.clone(), 204), (a.clone(), 204)]);
    wait_status(&app, &token, wid, &a, "acked").await;
    wait_status(&app, &token, wid, &b, "acked").await;
    let line = listen.line(10).await;
    assert!(
        line.contains(&a) && line.contains(" 503 ") && line.ends_with("retrying"),
        "{line}"
    );
    let line = listen.line(10).await;
    assert!(
        line.contains(&b) && line.contains(" 204 ") && !line.contains("attempt"),
        "{line}"
    );
    let line = listen.line(10).await;
    assert!(
        line.contains(&a) && line.contains(" 204 ") && line.ends_with("(attempt 2)"),
        "{line}"
    );
    // The app's answers went back with the nack and the ack.
    assert_eq!(
        history(&app, &token, wid, &a).await,
        [
            (1, "nacked".to_owned(), json!(503)),
            (2, "acked".to_owned(), json!(204))
        ]
    );
}

#[actix_web::test]
async fn an_app_that_rejects_one_event_with_400_gets_the_rest_and_that_one_is_failed() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("dev").await;
    let webhook = app.create_webhook(&token, "me", "w", "generic").await;
    let wid = webhook["webhookId"].as_str().unwrap();
    let mut local = LocalApp::start(&[204, 400, 204, 204]).await;
    let mut listen = listen(&app.base, &token, &["--forward-to", &local.url]);
    let mut posted = Vec::new();
    for n in 0..4 {
        posted.push(
            post_generic(
                &app,
                &webhook,
                format!(r#"{{"type":"t","n":{n}}}"#).as_bytes(),
            )
            .await,
        );
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(local.next(20).await.header("webhook-id").to_owned());
    }
    assert_eq!(
        got, posted,
        "each once, in order: the refused one is not retried"
    );
    let failed = wait_status(&app, &token, wid, &posted[1], "failed").await;
    assert_eq!(
        failed["reason"],
        r#"nacked: the app answered 400: {"error": "the test app answers 400"}"#
    );
    for id in [&posted[0], &posted[2], &posted[3]] {
        wait_status(&app, &token, wid, id, "acked").await;
    }
    assert_eq!(
        history(&app, &token, wid, &posted[1]).await,
        [(1, "nacked".to_owned(), json!(400))]
    );
    listen.line(10).await;
    let line = listen.line(10).await;
    assert!(
        line.contains(&posted[1])
            && line.contains(" 400 ")
            && line.contains("REJECTED by the app, not retried")
            && line.contains("the test app answers 400"),
        "{line}"
    );
    assert!(timeout(Duration::from_secs(2), local.seen.recv())
        .await
        .is_err());
}

#[actix_web::test]
async fn retry_4xx_and_no_retry_change_what_a_refusal_does() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("dev").await;
    let webhook = app.create_webhook(&token, "me", "w", "generic").await;
    let wid = webhook["webhookId"].as_str().unwrap();

    let mut local = LocalApp::start(&[409, 204]).await;
    let listening = listen(
        &app.base,
        &token,
        &["--forward-to", &local.url, "--retry-4xx"],
    );
    let a = post_generic(&app, &webhook, br#"{"type":"t"}"#).await;
    assert_eq!(local.next(20).await.status, 409);
    assert_eq!(local.next(20).await.status, 204);
    wait_status(&app, &token, wid, &a, "acked").await;
    drop(listening);

    let mut local = LocalApp::start(&[503]).await;
    let _listening = listen(
        &app.base,
        &token,
        &["--forward-to", &local.url, "--no-retry"],
    );
    let b = post_generic(&app, &webhook, br#"{"type":"t"}"#).await;
    assert_eq!(local.next(20).await.status, 503);
    let failed = wait_status(&app, &token, wid, &b, "failed").await;
    assert!(
        failed["reason"].as_str().unwrap().contains("503"),
        "{failed}"
    );
    assert!(timeout(Duration::from_secs(2), local.seen.recv())
        .await
        .is_err());
}

#[actix_web::test]
async fn without_forward_to_deliveries_are_json_lines_acked_once_written() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("dev").await;
    let mut listen = listen(&app.base, &token, &["--create", "pipe"]);

    // Stdout stays JSON lines: the created webhook is the first one.
    let created: Value = serde_json::from_str(&listen.line(20).await).unwrap();
    assert_eq!(created["type"], "webhook");
    assert_eq!(created["provider"], "generic");
    assert!(created["signingSecret"]
        .as_str()
        .unwrap()
        .starts_with("whsec_"));
    let wid = created["webhookId"].as_str().unwrap().to_owned();

    let text = br#"{"type":"invoice.paid","amount":42}"#;
    let binary = [0x00u8, 0xc3, 0x28, 0xff];
    let first = post_generic(&app, &created, text).await;
    let second = post_generic(&app, &created, &binary).await;

    let one: Value = serde_json::from_str(&listen.line(20).await).unwrap();
    let two: Value = serde_json::from_str(&listen.line(20).await).unwrap();
    // The frames as received.
    assert_eq!(one["type"], "delivery");
    assert_eq!(one["deliveryId"], first.as_str());
    assert_eq!(one["webhookId"], wid.as_str());
    assert_eq!(one["body"], std::str::from_utf8(text).unwrap());
    assert_eq!(one["bodyEncoding"], "utf8");
    assert_eq!(one["signature"]["webhook-id"], first.as_str());
    assert_eq!(two["deliveryId"], second.as_str());
    assert_eq!(two["bodyEncoding"], "base64");
    assert_eq!(
        STANDARD.decode(two["body"].as_str().unwrap()).unwrap(),
        binary
    );
    for id in [&first, &second] {
        wait_status(&app, &token, &wid, id, "acked").await;
    }
}

#[actix_web::test]
async fn listen_survives_a_hub_restart_without_loss_or_duplicates() {
    // A hub in a child process, so that it can be killed and started again on the same
    // port and data directory.
    let data_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut hub = HubProcess::start(data_dir.path(), port, &[]);
    let owner = hub
        .owner_token
        .clone()
        .expect("a first start prints the owner token");
    let remote = HubClient::new(port, &owner);
    let (_, token) = remote.create_agent("dev").await;
    let webhook = remote.create_webhook(&token, "me", "w", "generic").await;
    let client = &remote.client;
    let wid = webhook["webhookId"].as_str().unwrap().to_owned();
    let secret = webhook["signingSecret"].as_str().unwrap().to_owned();
    let url = webhook["url"].as_str().unwrap().to_owned();
    let send = |n: usize| {
        let body = format!(r#"{{"type":"tick","n":{n}}}"#).into_bytes();
        let headers = standard_webhook_headers(&secret, &body);
        (body, headers)
    };

    // The third delivery fails at the app for a while: it is in listen's hands, unacked,
    // when the hub goes down.
    let mut local = LocalApp::start(&[200, 200, 500, 500, 500]).await;
    let _listen = listen(&remote.base, &token, &["--forward-to", &local.url]);
    let mut posted = Vec::new();
    for n in 0..3 {
        let (body, headers) = send(n);
        posted.push(post(client, &url, &body, &headers).await);
    }
    let mut accepted = Vec::new();
    let mut received = Vec::new();
    while received.len() < 3 {
        let r = local.next(20).await;
        received.push(r.clone());
        if r.status == 200 {
            accepted.push(r.header("webhook-id").to_owned());
        }
    }
    assert_eq!(received[2].header("webhook-id"), posted[2]);
    assert_eq!(received[2].status, 500);

    // Killed, not stopped: whatever it had not committed is gone with it.
    hub.kill9();
    let again = HubProcess::start(data_dir.path(), port, &[]);
    assert!(
        again.owner_token.is_none(),
        "the same data directory, not a new hub"
    );
    // A new client: the old one's pooled connections died with the hub.
    let remote = HubClient::new(port, &owner);
    let client = &remote.client;
    for n in 3..6 {
        let (body, headers) = send(n);
        posted.push(post(client, &url, &body, &headers).await);
    }
    while accepted.len() < posted.len() {
        let r = local.next(30).await;
        assert!(
            standard_webhooks_valid(&secret, &r),
            "signed across the restart: {:?}",
            r.headers
        );
        if r.status == 200 {
            accepted.push(r.header("webhook-id").to_owned());
        }
    }
    // Everything arrived, and was taken once. (Not in the order it was sent: a delivery
    // the app refused with a 500 is retried by the hub in its own time, while the rest
    // go on; the script's 500s fall on whichever deliveries come when they do.)
    let mut sorted = accepted.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        accepted.len(),
        "each taken once: {accepted:?}"
    );
    let mut expected = posted.clone();
    expected.sort();
    assert_eq!(sorted, expected);
    for id in &posted {
        wait_status(&remote, &token, &wid, id, "acked").await;
    }
    // Nothing more comes: no delivery reaches the app twice.
    let extra = timeout(Duration::from_secs(2), local.seen.recv()).await;
    assert!(extra.is_err(), "an extra request: {extra:?}");
}

/// A push as GitHub sends it, signed with the webhook's secret.
fn github_push_headers(secret: &str, body: &[u8]) -> Vec<(String, String)> {
    [
        ("content-type", "application/json".to_owned()),
        ("user-agent", "GitHub-Hookshot/5a1b2c3".to_owned()),
        ("x-github-event", "push".to_owned()),
        ("x-github-delivery", ulid::Ulid::new().to_string()),
        ("x-github-hook-id", "42".to_owned()),
        ("x-hub-signature-256", github_signature(secret, body)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// What a sender may add to make an app on 127.0.0.1 trust it: credentials, the headers
/// proxies set to say who the client is or which URL it asked for, and one named as
/// hop-by-hop in its own `Connection` header.
const HOSTILE: [(&str, &str); 17] = [
    ("authorization", "Bearer hh_owner_stolen"),
    ("cookie", "session=admin"),
    ("proxy-authorization", "Basic YWRtaW46YWRtaW4="),
    ("x-api-key", "sk_live_stolen"),
    ("x-forwarded-for", "10.0.0.1"),
    ("x-forwarded-host", "admin.internal"),
    ("x-forwarded-proto", "https"),
    ("forwarded", "for=10.0.0.1;proto=https"),
    ("x-real-ip", "10.0.0.1"),
    ("true-client-ip", "10.0.0.1"),
    ("x-client-ip", "10.0.0.1"),
    ("cf-connecting-ip", "10.0.0.1"),
    ("via", "1.1 trusted-proxy"),
    ("x-original-url", "/admin"),
    ("x-rewrite-url", "/admin"),
    ("x-hop-secret", "hop"),
    ("x-custom", "not asked for"),
];

#[actix_web::test]
async fn forwarded_requests_carry_the_providers_headers_and_nothing_a_sender_added() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("dev").await;
    let webhook = app.create_webhook(&token, "me", "gh", "github").await;
    let secret = webhook["signingSecret"].as_str().unwrap();
    let wid = webhook["webhookId"].as_str().unwrap();
    let mut local = LocalApp::start(&[]).await;
    let _listen = listen(&app.base, &token, &["--forward-to", &local.url]);

    let body = br#"{"ref":"refs/heads/main"}"#;
    let provider = github_push_headers(secret, body);
    let mut headers = provider.clone();
    headers.push((
        "connection".to_owned(),
        "keep-alive, X-Hop-Secret".to_owned(),
    ));
    headers.extend(HOSTILE.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let id = post_raw(app.port, &format!("/v1/hooks/{wid}"), body, &headers).await;

    let r = local.next(20).await;
    assert_eq!(&r.body[..], body);
    for (name, value) in &provider {
        assert_eq!(r.header(name), value, "{name}");
    }
    assert_eq!(r.header("webhook-id"), id);
    assert!(standard_webhooks_valid(secret, &r), "{:?}", r.headers);
    for (name, _) in HOSTILE {
        assert!(
            !r.headers.contains_key(name),
            "{name} reached the app: {:?}",
            r.headers
        );
    }
    // Nothing else either: what the app gets is the allow-list and the request's own.
    let mut names: Vec<&str> = r.headers.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "content-length",
            "content-type",
            "date",
            "host",
            "user-agent",
            "webhook-id",
            "webhook-signature",
            "webhook-timestamp",
            "x-github-delivery",
            "x-github-event",
            "x-github-hook-id",
            "x-hub-signature-256",
        ]
    );
    wait_status(&app, &token, wid, &id, "acked").await;
}

#[actix_web::test]
async fn forward_header_and_its_environment_variable_pass_more_headers_by_name() {
    let app = spawn_app().await;
    let (_, token) = app.create_agent("dev").await;
    let webhook = app.create_webhook(&token, "me", "gh", "github").await;
    let secret = webhook["signingSecret"].as_str().unwrap();
    let url = webhook["url"].as_str().unwrap();
    let wid = webhook["webhookId"].as_str().unwrap();
    let mut local = LocalApp::start(&[]).await;
    let body = br#"{"ref":"refs/heads/main"}"#;
    let send = || async {
        let mut headers = github_push_headers(secret, body);
        for (k, v) in [
            ("X-Custom", "one"),
            ("X-Other", "two"),
            ("Authorization", "Bearer stolen"),
        ] {
            headers.push((k.to_owned(), v.to_owned()));
        }
        post(&app.client, url, body, &headers).await
    };

    let mut listening = listen(
        &app.base,
        &token,
        &["--forward-to", &local.url, "--forward-header", "X-Custom"],
    );
    let id = send().await;
    let r = local.next(20).await;
    assert_eq!(r.header("x-custom"), "one");
    assert_eq!(r.header("x-github-event"), "push");
    assert!(!r.headers.contains_key("x-other"), "{:?}", r.headers);
    assert!(!r.headers.contains_key("authorization"), "{:?}", r.headers);
    wait_status(&app, &token, wid, &id, "acked").await;
    listening.kill();

    let _listening = listen_with_env(
        &app.base,
        &token,
        &["--forward-to", &local.url],
        &[("HOOKHUB_FORWARD_HEADERS", "x-custom, X-Other")],
    );
    let id = send().await;
    let r = local.next(20).await;
    assert_eq!(r.header("webhook-id"), id);
    assert_eq!(r.header("x-custom"), "one");
    assert_eq!(r.header("x-other"), "two");
    assert!(!r.headers.contains_key("authorization"), "{:?}", r.headers);
}
