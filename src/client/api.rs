//! What `listen` asks of the hub over HTTP, and the one HTTP client it uses for the hub and
//! the app.

use std::{sync::Arc, time::Duration};

use awc::{http::StatusCode, Client, Connector};
use serde_json::{json, Value};

use crate::crypto::Secret;

/// The TLS setup of every client of ours: the Mozilla roots built in, so that a release
/// binary needs nothing from the system; HTTP/1.1, which WebSockets need.
pub fn tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// One client for the hub and the app.
pub(super) fn http_client() -> Result<Client, String> {
    let tls = tls_config()?;
    Ok(Client::builder()
        .connector(Connector::new().rustls_0_23(Arc::new(tls)))
        // What goes to the app is the provider's headers; add none of our own.
        .no_default_headers()
        .timeout(Duration::from_secs(30))
        .finish())
}

pub(super) async fn create_webhook(
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
