//! `hookhub listen`: a developer's client of a running hub. It connects to the agent socket
//! with an agent token and hands every delivery to one sink: the local app
//! (`--forward-to`), or stdout as one JSON line each.
//!
//! - **Ack after the sink has it.** The app answered 2xx, or the line is written and
//!   flushed. A delivery the app refuses (or cannot be reached for) is retried with backoff
//!   and stays unacked meanwhile, visible as `sent` in the activity.
//! - **In order.** One delivery at a time, in the order the hub sends them (its receipt
//!   order): the next waits until this one succeeded, as events reach a real agent. A
//!   delivery the app keeps refusing holds the rest back; fix the app and it goes through,
//!   or stop `listen` and it waits in the hub for the next run.
//! - **No loss across reconnects.** When the hub goes away, `listen` reconnects with
//!   backoff and the hub hands over again everything not acked; [`ledger`] makes sure the
//!   app gets a delivery once even when an ack was lost with the connection.
//!
//! Logs go to stderr; stdout carries only what the user reads or pipes: the created
//! webhook, and one line per delivery.
//!
//! Layout: this file parses the arguments and keeps the connection; [`forward`] posts to
//! the app; [`ledger`] decides what to take and what to ack again.

pub mod forward;
pub mod ledger;

use std::{
    cell::RefCell,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use awc::{
    http::{header::HeaderName, StatusCode, Uri},
    ws, Client, Connector,
};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::{io::AsyncWriteExt, sync::mpsc};

use crate::{
    crypto::{parse_secret, Secret, AGENT_TOKEN_PREFIX, OWNER_TOKEN_PREFIX},
    protocol,
};
use forward::{Delivery, Forwarder};
use ledger::{Arrival, Ledger};

/// The largest frame accepted from the hub: a 25 MiB body that is not UTF-8 is about
/// 34 MiB of base64, with its headers around it.
const MAX_FRAME: usize = 64 * 1024 * 1024;
/// How often the hub is pinged, and how long it may stay silent before the connection is
/// taken for dead (the hub pings too, every 15 s by default).
const PING_EVERY: Duration = Duration::from_secs(15);
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// A connection that lasted this long was healthy: the next reconnect starts quickly.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// The close code of a connection replaced by a newer one for the same agent.

#[derive(clap::Args)]
pub struct ListenArgs {
    /// Base URL of the hub.
    #[arg(long, env = "HOOKHUB_URL", default_value = "http://127.0.0.1:8080")]
    url: String,

    /// The agent's token (hh_agent_…). Prefer the environment variable: a flag can be
    /// seen by other users of the machine.
    #[arg(long, env = "HOOKHUB_AGENT_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    token: Secret,

    /// POST each delivery to this URL (your app); without it, print each delivery as a
    /// JSON line on stdout.
    #[arg(long, value_name = "URL")]
    forward_to: Option<String>,

    /// First create a webhook with this name for the agent, and print its URL and
    /// signing secret.
    #[arg(long, value_name = "NAME")]
    create: Option<String>,

    /// The provider of the webhook --create makes: generic (the default), github, stripe
    /// or slack.
    #[arg(long, requires = "create")]
    provider: Option<String>,

    /// Also forward this header to the app (repeatable, or a comma-separated list).
    /// Otherwise only the provider's own headers, the content headers and the Standard
    /// Webhooks signature headers are forwarded.
    #[arg(
        long = "forward-header",
        value_name = "NAME",
        env = "HOOKHUB_FORWARD_HEADERS",
        value_parser = parse_header_names
    )]
    forward_headers: Vec<HeaderNames>,

    /// Longest wait between two tries, reconnecting to the hub or retrying the app.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    max_backoff: Duration,
}

/// The names one `--forward-header` gives. A list rather than clap's own delimiter, so
/// that an empty entry (or an empty variable) adds nothing instead of being an error.
#[derive(Clone)]
struct HeaderNames(Vec<HeaderName>);

fn parse_header_names(s: &str) -> Result<HeaderNames, String> {
    forward::forward_header_names(s).map(HeaderNames)
}

/// Waits that double from `first` up to `max`, each shortened by up to a quarter at
/// random so that many clients of one hub do not come back in step.
pub struct Backoff {
    first: Duration,
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        let first = first.min(max);
        Self {
            first,
            next: first,
            max,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = getrandom::u32().unwrap_or(0) % 1000;
        delay.mul_f64(1.0 - f64::from(jitter) / 4000.0)
    }

    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// Where deliveries go: the sink.
enum Destination {
    Forward(Forwarder),
    Stdout,
}

/// What the connection and the sink share (one thread: the actix system's).
#[derive(Default)]
struct Shared {
    ledger: Ledger,
    /// Frames to the current connection's writer; `None` while disconnected.
    link: Option<mpsc::Sender<ws::Message>>,
    /// The current connection's writer, to let it send the closing frame on the way out.
    writer: Option<tokio::task::JoinHandle<()>>,
}

impl Shared {
    /// Sends an ack on the current connection; false if there is none to send it on.
    fn ack(&mut self, delivery_id: &str) -> bool {
        let frame = json!({ "type": "ack", "deliveryId": delivery_id }).to_string();
        match &self.link {
            Some(link) => link.try_send(ws::Message::Text(frame.into())).is_ok(),
            None => false,
        }
    }
}

/// A delivery taken from the hub: its frame as received, and what forwarding needs.
struct Taken {
    raw: String,
    delivery: Delivery,
}

pub async fn run(args: ListenArgs) -> Result<(), String> {
    let hub = base_url(&args.url, "--url")?;
    let token = args.token.expose();
    if token.starts_with(OWNER_TOKEN_PREFIX) {
        return Err(format!(
            "--token is an owner token; listen needs an agent token ({AGENT_TOKEN_PREFIX}…), made with POST /v1/agents"
        ));
    }
    if !token.starts_with(AGENT_TOKEN_PREFIX) {
        return Err(format!(
            "--token must be an agent token ({AGENT_TOKEN_PREFIX}…)"
        ));
    }
    let forward_to = args
        .forward_to
        .as_deref()
        .map(|u| base_url(u, "--forward-to"))
        .transpose()?;
    let client = http_client()?;

    if let Some(name) = &args.create {
        let created = create_webhook(
            &client,
            &hub,
            &args.token,
            name,
            args.provider.as_deref().unwrap_or("generic"),
        )
        .await?;
        print_created(&created, forward_to.is_some()).await?;
    }

    let destination = match forward_to {
        Some(url) => {
            tracing::info!(forward_to = %url, "forwarding deliveries");
            Destination::Forward(Forwarder::new(
                client.clone(),
                url,
                args.max_backoff,
                args.forward_headers
                    .iter()
                    .flat_map(|names| names.0.iter().cloned())
                    .collect(),
            ))
        }
        None => Destination::Stdout,
    };
    let shared = Rc::new(RefCell::new(Shared::default()));
    let (queue, taken) = mpsc::unbounded_channel();
    let result = tokio::select! {
        r = hand_over(destination, taken, shared.clone()) => r,
        r = stay_connected(&client, &hub, &args, shared.clone(), queue) => r,
        () = crate::shutdown::signal() => {
            tracing::info!("stopping; what was not acked waits in the hub for the next run");
            Ok(())
        }
    };
    // Close the socket properly so the hub sees the agent leave at once.
    let (link, writer) = {
        let mut shared = shared.borrow_mut();
        (shared.link.take(), shared.writer.take())
    };
    if let (Some(link), Some(writer)) = (link, writer) {
        let _ = link.try_send(ws::Message::Close(Some(ws::CloseCode::Normal.into())));
        drop(link);
        let _ = actix_web::rt::time::timeout(Duration::from_secs(1), writer).await;
    }
    result
}

/// An `http(s)://` URL without its trailing slash.
fn base_url(url: &str, flag: &str) -> Result<String, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{flag} `{url}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(url.trim_end_matches('/').to_owned()),
        _ => Err(format!(
            "{flag} must be an http:// or https:// URL, not `{url}`"
        )),
    }
}

/// One client for the hub and the app. TLS with the Mozilla roots built in, so a release
/// binary needs nothing from the system; HTTP/1.1, which WebSockets need.
fn http_client() -> Result<Client, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Client::builder()
        .connector(Connector::new().rustls_0_23(Arc::new(tls)))
        // What goes to the app is the provider's headers; add none of our own.
        .no_default_headers()
        .timeout(Duration::from_secs(30))
        .finish())
}

async fn create_webhook(
    client: &Client,
    hub: &str,
    token: &Secret,
    name: &str,
    provider: &str,
) -> Result<Value, String> {
    let url = format!("{hub}/v1/agents/me/webhooks");
    let mut resp = client
        .post(&url)
        .bearer_auth(token.expose())
        .send_json(&json!({ "name": name, "provider": provider }))
        .await
        .map_err(|e| format!("cannot reach the hub at {hub}: {e}"))?;
    let body = resp
        .body()
        .await
        .map_err(|e| format!("reading the hub's answer: {e}"))?;
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match resp.status() {
        StatusCode::CREATED => Ok(answer),
        StatusCode::UNAUTHORIZED => Err("the hub refused the agent token".to_owned()),
        status => Err(format!(
            "could not create the webhook ({status}): {}",
            answer["error"]["message"]
                .as_str()
                .unwrap_or("no reason given")
        )),
    }
}

/// Prints the created webhook, the one time its secret is shown: for a person when
/// forwarding, as the first JSON line (`"type": "webhook"`) when printing deliveries.
async fn print_created(created: &Value, for_a_person: bool) -> Result<(), String> {
    let text = if for_a_person {
        let field = |k: &str| created[k].as_str().unwrap_or("?").to_owned();
        format!(
            "Created webhook {} ({})\n  URL:            {}\n  Signing secret: {}\n\
             Give the URL and the signing secret to the sender (GitHub: Settings → Webhooks, \
             content type application/json). The secret is shown only this once.\n\n",
            field("webhookId"),
            field("provider"),
            field("url"),
            field("signingSecret"),
        )
    } else {
        let mut line = json!({ "type": "webhook" });
        if let (Some(line), Some(fields)) = (line.as_object_mut(), created.as_object()) {
            line.extend(fields.clone());
        }
        format!("{line}\n")
    };
    write_stdout(text.as_bytes()).await
}

async fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    let mut out = tokio::io::stdout();
    out.write_all(bytes)
        .await
        .map_err(|e| format!("writing to stdout: {e}"))?;
    out.flush()
        .await
        .map_err(|e| format!("writing to stdout: {e}"))
}

/// Hands deliveries to the sink one at a time, in order, acking each once it is there.
/// Returns only if stdout fails (the reader went away): nothing more can be handed over.
async fn hand_over(
    destination: Destination,
    mut taken: mpsc::UnboundedReceiver<Taken>,
    shared: Rc<RefCell<Shared>>,
) -> Result<(), String> {
    while let Some(t) = taken.recv().await {
        match &destination {
            Destination::Forward(forwarder) => forwarder.forward(&t.delivery).await,
            Destination::Stdout => {
                let mut line = t.raw.into_bytes();
                line.push(b'\n');
                write_stdout(&line).await?;
            }
        }
        let mut shared = shared.borrow_mut();
        let sent = shared.ack(&t.delivery.delivery_id);
        shared
            .ledger
            .done(&t.delivery.delivery_id, sent, Instant::now());
    }
    Ok(())
}

/// Connects, reads until the connection ends, and connects again, with backoff. Returns
/// only on what retrying cannot fix: the token is refused, or another connection for the
/// same agent took over.
async fn stay_connected(
    client: &Client,
    hub: &str,
    args: &ListenArgs,
    shared: Rc<RefCell<Shared>>,
    queue: mpsc::UnboundedSender<Taken>,
) -> Result<(), String> {
    let url = format!("{hub}/v1/agent/connect");
    let mut backoff = Backoff::new(Duration::from_millis(250), args.max_backoff);
    loop {
        let connected = client
            .ws(&url)
            .bearer_auth(args.token.expose())
            .max_frame_size(MAX_FRAME)
            .connect()
            .await;
        match connected {
            Ok((_, framed)) => {
                tracing::info!(hub = %hub, "connected; waiting for deliveries");
                let since = Instant::now();
                let (sink, stream) = framed.split();
                let (link, frames) = mpsc::channel(256);
                {
                    let mut shared = shared.borrow_mut();
                    shared.link = Some(link.clone());
                    shared.writer = Some(actix_web::rt::spawn(write_frames(sink, frames)));
                }
                let ended = read_frames(stream, &link, &shared, &queue).await;
                {
                    let mut shared = shared.borrow_mut();
                    shared.link = None;
                    shared.writer = None;
                    shared.ledger.connection_ended(Instant::now());
                }
                drop(link);
                if since.elapsed() >= HEALTHY_AFTER {
                    backoff.reset();
                }
                let wait = backoff.next_delay();
                match ended {
                    Ended::Replaced => {
                        return Err(
                            "another connection for this agent replaced this one; stopping"
                                .to_owned(),
                        )
                    }
                    Ended::Lost(why) => tracing::warn!(
                        reason = %why, retry_in_ms = wait.as_millis() as u64,
                        "connection to the hub lost; reconnecting"
                    ),
                }
                actix_web::rt::time::sleep(wait).await;
            }
            Err(awc::error::WsClientError::InvalidResponseStatus(StatusCode::UNAUTHORIZED)) => {
                return Err("the hub refused the agent token".to_owned());
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(
                    hub = %hub, error = %e, retry_in_ms = wait.as_millis() as u64,
                    "cannot connect to the hub; trying again"
                );
                actix_web::rt::time::sleep(wait).await;
            }
        }
    }
}

/// Owns the socket's write half: acks, pongs, pings and the closing frame, in order.
async fn write_frames(
    mut sink: impl Sink<ws::Message> + Unpin,
    mut frames: mpsc::Receiver<ws::Message>,
) {
    while let Some(frame) = frames.recv().await {
        let closing = matches!(frame, ws::Message::Close(_));
        if sink.send(frame).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}

enum Ended {
    Replaced,
    Lost(String),
}

async fn read_frames<E: std::fmt::Display>(
    mut stream: impl Stream<Item = Result<ws::Frame, E>> + Unpin,
    link: &mpsc::Sender<ws::Message>,
    shared: &Rc<RefCell<Shared>>,
    queue: &mpsc::UnboundedSender<Taken>,
) -> Ended {
    let mut ping = actix_web::rt::time::interval(PING_EVERY);
    let mut last_heard = Instant::now();
    loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = ping.tick() => {
                if last_heard.elapsed() > IDLE_TIMEOUT {
                    return Ended::Lost("the hub was silent too long".to_owned());
                }
                let _ = link.try_send(ws::Message::Ping(bytes::Bytes::new()));
                continue;
            }
        };
        last_heard = Instant::now();
        match frame {
            Some(Ok(ws::Frame::Text(text))) => on_text(&text, shared, queue),
            Some(Ok(ws::Frame::Ping(payload))) => {
                let _ = link.try_send(ws::Message::Pong(payload));
            }
            Some(Ok(ws::Frame::Close(reason))) => {
                let _ = link.try_send(ws::Message::Close(None));
                return match reason {
                    Some(r) if u16::from(r.code) == protocol::CLOSE_REPLACED => Ended::Replaced,
                    Some(r) => Ended::Lost(format!(
                        "closed by the hub: {}",
                        r.description
                            .unwrap_or_else(|| u16::from(r.code).to_string())
                    )),
                    None => Ended::Lost("closed by the hub".to_owned()),
                };
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Ended::Lost(e.to_string()),
            None => return Ended::Lost("the connection ended".to_owned()),
        }
    }
}

fn on_text(text: &[u8], shared: &Rc<RefCell<Shared>>, queue: &mpsc::UnboundedSender<Taken>) {
    let Ok(raw) = std::str::from_utf8(text) else {
        tracing::warn!("the hub sent a text frame that is not UTF-8; ignored");
        return;
    };
    let frame = serde_json::from_str::<Value>(raw).unwrap_or(Value::Null);
    match frame["type"].as_str() {
        Some("delivery") => {}
        Some("error") => {
            tracing::warn!(frame = %raw, "the hub reported an error");
            return;
        }
        _ => {
            tracing::debug!(frame = %raw, "ignored a frame");
            return;
        }
    }
    let delivery = match Delivery::deserialize(&frame) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "a delivery frame could not be read; left unacked");
            return;
        }
    };
    if let Err(e) = delivery.body_bytes() {
        tracing::warn!(delivery_id = %delivery.delivery_id, error = %e, "left unacked");
        return;
    }
    let mut shared = shared.borrow_mut();
    match shared.ledger.arrive(&delivery.delivery_id, Instant::now()) {
        Arrival::Take => {
            let _ = queue.send(Taken {
                raw: raw.to_owned(),
                delivery,
            });
        }
        Arrival::Have => {
            tracing::debug!(delivery_id = %delivery.delivery_id, "already in hand; this copy is dropped");
        }
        Arrival::AckAgain => {
            tracing::info!(delivery_id = %delivery.delivery_id, "already handed over before the reconnect; acked again, not handed over twice");
            if !shared.ack(&delivery.delivery_id) {
                shared
                    .ledger
                    .done(&delivery.delivery_id, false, Instant::now());
            }
        }
    }
}
