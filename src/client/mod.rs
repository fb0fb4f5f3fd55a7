//! `hookhub listen`: a developer's client of a running hub. It connects to the agent socket
//! with an agent token and hands every delivery to one sink: the local app
//! (`--forward-to`), or stdout as one JSON line each.
//!
//! - **Ack after the sink has it.** The app answered 2xx, or the line is written and
//!   flushed. Anything else is nacked, by the [`forward::Policy`]: a 4xx without requeue
//!   (the hub marks it `failed` at once), a 5xx, a timeout or an app that cannot be
//!   reached with requeue (the hub hands it again after its backoff, until its attempt
//!   limit). The app's status and latency go back with the ack or nack, for the
//!   delivery's history.
//! - **In order.** One delivery at a time, in the order the hub sends them (its receipt
//!   order), as events reach a real agent. A delivery being retried does not hold back
//!   the ones behind it: the hub sends it again in its own time.
//! - **No loss across reconnects.** When the hub goes away, `listen` reconnects with
//!   backoff and the hub hands over again everything not acked; [`ledger`] makes sure the
//!   app gets a delivery once even when an ack was lost with the connection.
//!
//! Logs go to stderr; stdout carries only what the user reads or pipes: the created
//! webhook, and one line per delivery.
//!
//! Layout: this file starts the sink and the connection and hands deliveries from one to
//! the other; `args.rs` is the command line; `api.rs` is the HTTP client and what it asks
//! of the hub; `connection.rs` keeps the agent socket; `backoff.rs` spaces the retries;
//! [`forward`] posts to the app; [`ledger`] decides what to take and what to ack again.
//!
//! Beside it, [`trigger`] is `hookhub trigger`, the sender's side: one sample event posted
//! to a webhook's URL, signed as its provider signs, through the same HTTP client.

mod api;
pub use api::tls_config;
mod args;
mod backoff;
mod connection;
pub mod forward;
pub mod ledger;
pub mod trigger;

use std::{
    cell::RefCell,
    rc::Rc,
    time::{Duration, Instant},
};

use awc::ws;
use serde_json::{json, Value};
use tokio::{io::AsyncWriteExt, sync::mpsc};

use crate::{
    crypto::{AGENT_TOKEN_PREFIX, OWNER_TOKEN_PREFIX},
    protocol::AgentFrame,
};
use args::base_url;
pub use args::ListenArgs;
use connection::{Shared, Taken};
use forward::{Forwarder, Verdict};

/// Where deliveries go: the sink.
enum Destination {
    Forward(Forwarder),
    Stdout,
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
    let client = api::http_client()?;

    if let Some(name) = &args.create {
        let created = api::create_webhook(
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
                args.policy(),
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
        r = connection::stay_connected(&client, &hub, &args, shared.clone(), queue) => r,
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
        let verdict = match &destination {
            Destination::Forward(forwarder) => forwarder.forward(&t.delivery).await,
            Destination::Stdout => {
                let mut line = t.raw.into_bytes();
                line.push(b'\n');
                write_stdout(&line).await?;
                Verdict::Ack(None)
            }
        };
        let delivery_id = t.delivery.delivery_id.into_owned();
        let mut shared = shared.borrow_mut();
        match verdict {
            Verdict::Ack(result) => {
                let sent = shared.settle(&AgentFrame::Ack {
                    delivery_id: delivery_id.clone(),
                    result,
                });
                shared.ledger.done(&delivery_id, sent, Instant::now());
            }
            Verdict::Nack {
                requeue,
                reason,
                result,
            } => {
                // Unsent (no connection), it is handed out again at the next one all the
                // same: it was never acked.
                shared.settle(&AgentFrame::Nack {
                    delivery_id: delivery_id.clone(),
                    requeue,
                    reason: Some(reason),
                    result,
                });
                shared.ledger.handed_back(&delivery_id);
            }
        }
    }
    Ok(())
}
