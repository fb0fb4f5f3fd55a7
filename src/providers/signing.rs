//! Signing what the hub hands to an agent: a Standard Webhooks signature of the body, made
//! with the webhook's signing secret when the frame is sent (so its timestamp is fresh
//! even for a delivery that waited days in the backlog), and with the previous secret too
//! while a rotation's overlap lasts, so an agent holding either secret can verify.

use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    clock, crypto::MasterKey, protocol::Signature, service::webhooks::signing_aad,
    store::PendingDelivery,
};

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, key = base64-decoded
/// secret after `whsec_`. `None` if the secret is not in that form.
pub fn standard_webhooks_signature(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<String> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `signature` object of a delivery frame. `None` only if the sealed secret cannot be
/// opened, which is logged: the frame then goes without one rather than not at all.
pub fn sign_delivery(key: &MasterKey, d: &PendingDelivery) -> Option<Signature> {
    let now_ms = clock::now_ms();
    let timestamp = now_ms / 1000;
    let aad = signing_aad(&d.webhook_id);
    let open = |sealed: &[u8]| match key.open(sealed, &aad) {
        Ok(secret) => Some(secret),
        Err(e) => {
            tracing::error!(webhook_id = %d.webhook_id, error = %e, "cannot open the signing secret");
            None
        }
    };
    let current = open(&d.secrets.signing)?;
    let mut signatures = vec![standard_webhooks_signature(
        current.expose(),
        d.id.as_str(),
        timestamp,
        &d.body,
    )?];
    if let (Some(previous), Some(until)) = (&d.secrets.previous, d.secrets.previous_until) {
        if now_ms < until {
            if let Some(sig) = open(previous).and_then(|p| {
                standard_webhooks_signature(p.expose(), d.id.as_str(), timestamp, &d.body)
            }) {
                signatures.push(sig);
            }
        }
    }
    Some(Signature {
        id: d.id.to_string(),
        timestamp: timestamp.to_string(),
        signature: signatures.join(" "),
    })
}
