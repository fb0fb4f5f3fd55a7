//! The test harness: a real hookhub on port 0 with a fresh data directory, spoken to over
//! real HTTP and real WebSockets.

use std::time::Duration;

use actix_web::rt::time::timeout;
use awc::{ws, BoxedSocket, Client};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hookhub::{config::Config, startup::Application};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub mod mcp;
pub mod process;
pub mod senders;
pub mod store;

/// An in-process hub. Derefs to [`HubClient`] for talking to it.
pub struct TestApp {
    pub hub: HubClient,
    pub owner_token: String,
    pub owner_account: String,
    pub data_dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    stopped: Option<oneshot::Receiver<()>>,
}

impl std::ops::Deref for TestApp {
    type Target = HubClient;
    fn deref(&self) -> &HubClient {
        &self.hub
    }
}

/// HTTP and WebSocket access to a hub at a port, in-process or a child process.
pub struct HubClient {
    pub base: String,
    pub port: u16,
    pub client: Client,
    /// The first owner's token, used by the helpers that create things.
    pub owner_token: String,
    /// Signing secrets of the webhooks created through this client, by webhook id, so
    /// that a test can post as the webhook's sender would.
    pub secrets: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl HubClient {
    pub fn new(port: u16, owner_token: &str) -> Self {
        Self {
            base: format!("http://127.0.0.1:{port}"),
            port,
            client: Client::builder().timeout(Duration::from_secs(30)).finish(),
            owner_token: owner_token.to_owned(),
            secrets: Default::default(),
        }
    }
}

/// Runs the `hookhub` command line on a data directory, off this thread: an in-process
/// hub on this thread may be inside a commit, and blocking the thread would keep its write
/// lock from the command for as long as the command waits.
pub async fn hookhub_cli(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hookhub"));
    command.args(args).arg("--data-dir").arg(data_dir);
    actix_web::rt::task::spawn_blocking(move || command.output().expect("hookhub runs"))
        .await
        .unwrap()
}

/// Another owner account on the hub, made the way an operator makes one: with the CLI.
/// Its token.
pub async fn create_owner(app: &TestApp, name: &str) -> String {
    let out = hookhub_cli(app.data_dir.path(), &["account", "create", "--name", name]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    created["token"].as_str().unwrap().to_owned()
}

/// Starts a hub with the defaults on a fresh data directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a hub, letting the test change settings first.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    init_logs();
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_data_dir(data_dir.path().to_path_buf());
    tweak(&mut config);
    let app = Application::build(config).await.expect("hub starts");
    let port = app.port();
    let owner = app.first_owner().expect("first start creates an owner");
    let (owner_token, owner_account) = (owner.token.clone(), owner.account_id.clone());
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let (stopped_tx, stopped_rx) = oneshot::channel::<()>();
    actix_web::rt::spawn(async move {
        let _ = app
            .run_until(async {
                let _ = shutdown_rx.await;
            })
            .await;
        let _ = stopped_tx.send(());
    });
    TestApp {
        hub: HubClient::new(port, &owner_token),
        owner_token,
        owner_account,
        data_dir,
        shutdown: Some(shutdown_tx),
        stopped: Some(stopped_rx),
    }
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,sqlx=warn")
            .with_test_writer()
            .try_init();
    }
}

/// A response: status, raw body, and the body as JSON (Null if it is not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub raw: Bytes,
    pub json: Value,
    pub headers: awc::http::header::HeaderMap,
}

impl Resp {
    /// The `Retry-After` header, in seconds; the test fails if it is missing or not a number.
    pub fn retry_after_secs(&self) -> u64 {
        self.headers
            .get("retry-after")
            .expect("a Retry-After header")
            .to_str()
            .unwrap()
            .parse()
            .expect("Retry-After in seconds")
    }
}

impl HubClient {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        };
        into_resp(resp.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.request("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.request("POST", path, Some(token), Some(body)).await
    }

    /// POSTs raw bytes to a webhook's ingest URL with the given headers.
    pub async fn ingest(
        &self,
        webhook_id: &str,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .client
            .post(self.url(&format!("/v1/hooks/{webhook_id}")));
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        into_resp(req.send_body(body.into()).await.expect("ingest sent")).await
    }

    /// POSTs to a generic webhook made through this client as its sender would: signed
    /// with the webhook's signing secret (see [`HubClient::signed_headers`]).
    pub async fn ingest_signed(
        &self,
        webhook_id: &str,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let body = body.into();
        let signed = self.signed_headers(webhook_id, &body);
        let mut all: Vec<(&str, &str)> = signed
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        all.extend_from_slice(headers);
        self.ingest(webhook_id, body, &all).await
    }

    /// Standard Webhooks headers for `body`, signed with the secret of a webhook made
    /// through this client (see [`senders::standard_webhook_headers`]).
    pub fn signed_headers(&self, webhook_id: &str, body: &[u8]) -> Vec<(String, String)> {
        let secret = self
            .secrets
            .lock()
            .unwrap()
            .get(webhook_id)
            .cloned()
            .expect("a webhook created through this client");
        senders::standard_webhook_headers(&secret, body)
    }

    /// Creates an agent under the first owner: `(agentId, token)`.
    pub async fn create_agent(&self, name: &str) -> (String, String) {
        self.create_agent_as(&self.owner_token, name).await
    }

    pub async fn create_agent_as(&self, owner_token: &str, name: &str) -> (String, String) {
        let r = self
            .post("/v1/agents", owner_token, json!({ "name": name }))
            .await;
        assert_eq!(r.status, 201, "{:?}", r.json);
        (
            r.json["agentId"].as_str().unwrap().to_owned(),
            r.json["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a webhook: the whole create response.
    pub async fn create_webhook(
        &self,
        token: &str,
        agent: &str,
        name: &str,
        provider: &str,
    ) -> Value {
        let r = self
            .post(
                &format!("/v1/agents/{agent}/webhooks"),
                token,
                json!({ "name": name, "provider": provider }),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.json);
        self.secrets.lock().unwrap().insert(
            r.json["webhookId"].as_str().unwrap().to_owned(),
            r.json["signingSecret"].as_str().unwrap().to_owned(),
        );
        r.json
    }

    /// An agent of the first owner with one generic webhook: `(agentId, agentToken,
    /// webhookId)`.
    pub async fn agent_with_webhook(&self) -> (String, String, String) {
        let (agent, token) = self.create_agent("bot").await;
        let wh = self
            .create_webhook(&self.owner_token, &agent, "hook", "generic")
            .await;
        (agent, token, wh["webhookId"].as_str().unwrap().to_owned())
    }

    /// A webhook's activity as its owner sees it (newest first, up to 100).
    pub async fn activity(&self, agent: &str, webhook_id: &str) -> Vec<Value> {
        let r = self
            .get(
                &format!("/v1/agents/{agent}/webhooks/{webhook_id}/deliveries?limit=100"),
                &self.owner_token,
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json);
        r.json["deliveries"].as_array().unwrap().clone()
    }

    /// Opens the agent's socket.
    pub async fn connect(&self, agent_token: &str) -> AgentSocket {
        // ws:// for http://, wss:// for https:// (a hub behind a TLS proxy).
        let url = format!("{}/v1/agent/connect", self.base.replacen("http", "ws", 1));
        let (_, framed) = self
            .client
            .ws(url)
            .bearer_auth(agent_token)
            .max_frame_size(64 * 1024 * 1024)
            .connect()
            .await
            .expect("agent socket connects");
        AgentSocket { framed }
    }
}

impl TestApp {
    /// Stops the hub the way SIGTERM does, and waits for it.
    /// What [`TestApp::stop`] sends, for a test that starts the shutdown itself while it
    /// still talks to the hub; `stop` then only waits for the end.
    pub fn take_shutdown(&mut self) -> oneshot::Sender<()> {
        self.shutdown.take().expect("the hub is not stopping yet")
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(rx) = self.stopped.take() {
            let _ = timeout(Duration::from_secs(20), rx).await;
        }
    }
}

async fn into_resp<S>(mut resp: awc::ClientResponse<S>) -> Resp
where
    S: futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
{
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let raw = resp
        .body()
        .limit(64 * 1024 * 1024)
        .await
        .expect("body read");
    let json = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Resp {
        status,
        raw,
        json,
        headers,
    }
}

pub struct AgentSocket {
    pub framed: actix_codec::Framed<BoxedSocket, ws::Codec>,
}

pub enum Incoming {
    Json(Value),
    Close(Option<ws::CloseReason>),
    Ended,
}

impl AgentSocket {
    /// The next JSON text frame, answering pings; panics after `secs` without one.
    pub async fn next_json(&mut self, secs: u64) -> Value {
        match self.next_incoming(secs).await {
            Some(Incoming::Json(v)) => v,
            Some(Incoming::Close(r)) => panic!("socket closed: {r:?}"),
            Some(Incoming::Ended) => panic!("socket ended"),
            None => panic!("no frame within {secs}s"),
        }
    }

    /// The next frame, or `None` if nothing came within `secs`.
    pub async fn next_incoming(&mut self, secs: u64) -> Option<Incoming> {
        let deadline = Duration::from_secs(secs);
        let fut = async {
            loop {
                match self.framed.next().await {
                    Some(Ok(ws::Frame::Text(bytes))) => {
                        return Incoming::Json(serde_json::from_slice(&bytes).expect("JSON frame"))
                    }
                    Some(Ok(ws::Frame::Ping(p))) => {
                        let _ = self.framed.send(ws::Message::Pong(p)).await;
                    }
                    Some(Ok(ws::Frame::Close(reason))) => return Incoming::Close(reason),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return Incoming::Ended,
                }
            }
        };
        timeout(deadline, fut).await.ok()
    }

    /// The next `delivery` frame, skipping nothing else: anything else is a failure.
    pub async fn next_delivery(&mut self, secs: u64) -> Value {
        let v = self.next_json(secs).await;
        assert_eq!(v["type"], "delivery", "expected a delivery frame, got {v}");
        v
    }

    pub async fn send_json(&mut self, v: Value) {
        self.framed
            .send(ws::Message::Text(v.to_string().into()))
            .await
            .expect("frame sent");
    }

    pub async fn send_text(&mut self, s: &str) {
        self.framed
            .send(ws::Message::Text(s.to_owned().into()))
            .await
            .expect("frame sent");
    }

    pub async fn ack(&mut self, delivery_id: &str) {
        self.send_json(json!({ "type": "ack", "deliveryId": delivery_id }))
            .await;
    }

    pub async fn close(mut self) {
        let _ = self.framed.send(ws::Message::Close(None)).await;
    }
}

/// The sorted field names of a JSON object.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

/// A delivery as the agent's own activity shows it (`token` is the agent's), once it has
/// `status`; fails after about 10 s.
pub async fn wait_status(
    hub: &HubClient,
    token: &str,
    webhook_id: &str,
    delivery_id: &str,
    status: &str,
) -> Value {
    let path = format!("/v1/agents/me/webhooks/{webhook_id}/deliveries?limit=500");
    let mut last = Value::Null;
    for _ in 0..400 {
        let list = hub.get(&path, token).await;
        assert_eq!(list.status, 200, "{:?}", list.json);
        if let Some(d) = list.json["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["deliveryId"] == delivery_id)
        {
            if d["status"] == status {
                return d.clone();
            }
            last = d.clone();
        }
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{delivery_id} never became {status}; last seen {last}");
}
