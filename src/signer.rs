//! Signing what the hub hands to an agent: a Standard Webhooks signature of the body, made
//! with the webhook's signing secret when the frame is sent (so its timestamp is fresh
//! even for a delivery that waited days in the backlog), and with the previous secret too
//! while a rotation's overlap lasts, so an agent holding either secret can verify.

use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use std::collections::HashMap;

use crate::{
    clock,
    crypto::{standard_webhooks_key, Keys, MasterKey, Secret},
    domain::{ids::WebhookId, PendingDelivery},
    protocol::Signature,
};

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, key = base64-decoded
/// secret after `whsec_`. `None` if the secret is not in that form.
pub fn standard_webhooks_signature(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<String> {
    signature_with_key(&standard_webhooks_key(secret)?, id, timestamp, body)
}

fn signature_with_key(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
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

/// One webhook's signing keys, opened and decoded, with the sealed form they came from.
struct OpenedKeys {
    sealed_signing: Vec<u8>,
    sealed_previous: Option<Vec<u8>>,
    current: Vec<u8>,
    /// The previous key, and the end (ms) of its overlap.
    previous: Option<(Vec<u8>, i64)>,
}

impl OpenedKeys {
    fn open(key: &MasterKey, d: &PendingDelivery) -> Option<Self> {
        // Every secret there is, whatever the time: this copy is kept for the session, and
        // `sign` checks the previous one's overlap at each frame.
        let keys = match Keys::open(key, &d.webhook_id, &d.secrets, i64::MIN) {
            Ok(keys) => keys,
            Err(e) => {
                tracing::error!(webhook_id = %d.webhook_id, error = %e, "cannot open the signing secret");
                return None;
            }
        };
        let decode = |secret: &Secret| {
            let key = standard_webhooks_key(secret.expose());
            if key.is_none() {
                tracing::error!(webhook_id = %d.webhook_id, "the signing secret is not a Standard Webhooks secret");
            }
            key
        };
        Some(Self {
            sealed_signing: d.secrets.signing.clone(),
            sealed_previous: d.secrets.previous.clone(),
            current: decode(&keys.signing)?,
            previous: keys
                .previous
                .as_ref()
                .and_then(|(secret, until)| Some((decode(secret)?, *until))),
        })
    }

    /// Still the keys this delivery carries (a rotation since changes the sealed form).
    fn matches(&self, d: &PendingDelivery) -> bool {
        self.sealed_signing == d.secrets.signing && self.sealed_previous == d.secrets.previous
    }
}

/// Signs frames for one agent session, opening each webhook's sealed secrets once rather
/// than once per frame (the one-agent backlog flush signs tens of thousands a second).
#[derive(Default)]
pub struct Signer {
    keys: HashMap<WebhookId, OpenedKeys>,
}

impl Signer {
    /// The `signature` object of a delivery frame. `None` only if the sealed secret cannot
    /// be opened, which is logged: the frame then goes without one rather than not at all.
    pub fn sign(&mut self, key: &MasterKey, d: &PendingDelivery) -> Option<Signature> {
        let keys = match self.keys.get(&d.webhook_id) {
            Some(k) if k.matches(d) => k,
            _ => {
                let opened = OpenedKeys::open(key, d)?;
                self.keys.insert(d.webhook_id.clone(), opened);
                self.keys.get(&d.webhook_id)?
            }
        };
        let now_ms = clock::now_ms();
        let timestamp = now_ms / 1000;
        let mut signature = signature_with_key(&keys.current, d.id.as_str(), timestamp, &d.body)?;
        if let Some((previous, until)) = &keys.previous {
            if now_ms < *until {
                if let Some(also) = signature_with_key(previous, d.id.as_str(), timestamp, &d.body)
                {
                    signature.push(' ');
                    signature.push_str(&also);
                }
            }
        }
        Some(Signature {
            id: d.id.to_string(),
            timestamp: timestamp.to_string(),
            signature,
        })
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;
    use crate::providers::test_support::arb;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(arb::CASES))]

        /// The reference library is the oracle: what the hub signs, any Standard Webhooks
        /// receiver computes too. (It signs text only, so the bodies here are UTF-8; the
        /// verifier's properties in `generic` cover any bytes.)
        #[test]
        fn the_signature_is_the_reference_librarys(
            secret in arb::whsec(),
            id in "[!-~]{1,40}",
            timestamp in 0i64..=4_102_444_800,
            body in any::<String>(),
        ) {
            let reference = standardwebhooks::Webhook::new(&secret)
                .unwrap()
                .sign(&id, timestamp, body.as_bytes())
                .unwrap();
            prop_assert_eq!(
                standard_webhooks_signature(&secret, &id, timestamp, body.as_bytes()),
                Some(reference)
            );
        }

        #[test]
        fn any_secret_string_signs_or_is_refused_without_panicking(
            secret in any::<String>(),
            body in arb::body(),
        ) {
            let decodable = STANDARD
                .decode(secret.strip_prefix("whsec_").unwrap_or(&secret))
                .is_ok();
            prop_assert_eq!(
                standard_webhooks_signature(&secret, "msg_1", 1, &body).is_some(),
                decodable
            );
        }
    }
}
