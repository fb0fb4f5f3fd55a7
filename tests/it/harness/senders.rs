//! What senders sign with, made here by each scheme's published recipe rather than by the
//! hub's code, so that a test of verification does not check the hub against itself.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{HubClient, Resp};

/// Seconds since the epoch, as the schemes' timestamps count them.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn hmac_hex(key: &[u8], content: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(content);
    hex::encode(mac.finalize().into_bytes())
}

/// GitHub's recipe: `sha256=` + hex HMAC-SHA256 of the body, keyed with the secret as text.
pub fn github_signature(secret: &str, body: impl AsRef<[u8]>) -> String {
    format!("sha256={}", hmac_hex(secret.as_bytes(), body.as_ref()))
}

/// Posts a push to a GitHub webhook as GitHub does: signed with `secret`, with its own
/// `X-GitHub-Delivery` so that the hub does not drop it as a repeat.
pub async fn github_push(hub: &HubClient, webhook_id: &str, secret: &str, body: &str) -> Resp {
    let signature = github_signature(secret, body);
    let delivery = ulid::Ulid::new().to_string();
    hub.ingest(
        webhook_id,
        body.to_owned(),
        &[
            ("content-type", "application/json"),
            ("x-github-event", "push"),
            ("x-github-delivery", &delivery),
            ("x-hub-signature-256", &signature),
        ],
    )
    .await
}

/// Standard Webhooks headers for `body`, made here by the published recipe (not by the
/// hub's code): a fresh `webhook-id`, the current time, and `v1,` + base64 HMAC-SHA256 of
/// `id.timestamp.body` keyed with the base64 after `whsec_`.
pub fn standard_webhook_headers(secret: &str, body: &[u8]) -> Vec<(String, String)> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let msg_id = format!("msg_{}", ulid::Ulid::new());
    let timestamp = now_secs().to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body);
    let signature = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    vec![
        ("webhook-id".to_owned(), msg_id),
        ("webhook-timestamp".to_owned(), timestamp),
        ("webhook-signature".to_owned(), signature),
    ]
}
