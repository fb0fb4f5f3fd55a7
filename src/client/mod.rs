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
//! Layout: this file starts the sink and the connection and hands deliveries from one to
//! the other; `args.rs` is the command line; `api.rs` is the HTTP client and what it asks
//! of the hub; `connection.rs` keeps the agent socket; `backoff.rs` spaces the retries;
//! [`forward`] posts to the app; [`ledger`] decides what to take and what to ack again.

mod api;
pub use api::tls_config;
mod args;
mod backoff;
mod connection;
pub mod forward;
pub mod ledger;

use std::{
    cell::RefCell,
    rc::Rc,
    time::{Duration, Instant},
};

use awc::ws;
use serde_json::{json, Value};
use tokio::{io::AsyncWriteExt, sync::mpsc};

use crate::crypto::{AGENT_TOKEN_PREFIX, OWNER_TOKEN_PREFIX};
use args::base_url;
pub use args::ListenArgs;
use connection::{Shared, Taken};
use forward::Forwarder;

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
