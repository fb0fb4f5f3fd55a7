//! Providers: who sends to a webhook and how their requests are signed.
//!
//! One module per provider's scheme ([`github`], [`stripe`], [`slack`], [`generic`] for
//! Standard Webhooks) behind one interface, [`Provider::inspect`]: given a request's headers
//! and raw body, the webhook's opened secrets and the time, it says whether the request is
//! verified, rejected (and why) or unverifiable, and names the event and the provider's own
//! delivery id. Verification only reads; what to do with the verdict is ingest's business.
//! [`signing`] is the other direction: signing what the hub hands to an agent.

use std::fmt;

use actix_web::http::header::HeaderMap;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{
    crypto::{ct_eq, CryptoError, MasterKey, Secret},
    ids::WebhookId,
    service::webhooks::{provider_aad, signing_aad},
    store::SealedSecrets,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Standard Webhooks.
    Generic,
    Github,
    Stripe,
    Slack,
}

impl Provider {
    pub const ALL: [Provider; 4] = [Self::Generic, Self::Github, Self::Stripe, Self::Slack];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Github => "github",
            Self::Stripe => "stripe",
            Self::Slack => "slack",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Stripe and Slack sign with a secret they issue, which the owner sets on the webhook.
    pub fn uses_provider_secret(self) -> bool {
        matches!(self, Self::Stripe | Self::Slack)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub mod envelope;
pub mod generic;
pub mod github;
pub mod signing;
pub mod slack;
pub mod stripe;

pub use signing::Signer;

/// What a provider's scheme says of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A signature made with one of the webhook's secrets matched, in time.
    Verified,
    /// Refused. The reason goes back to the sender and into the activity, so that a
    /// misconfigured secret can be debugged; it never contains a secret or a signature.
    Rejected(String),
    /// The scheme needs a secret the owner has not set yet (Stripe's or Slack's).
    Unverifiable,
}

/// A webhook's secrets, opened, as verification needs them.
pub struct Keys {
    /// The current signing secret, `whsec_…`.
    pub signing: Secret,
    /// The signing secret replaced by the last rotation, and the time (ms) until which it
    /// still verifies, so that nothing signed during the change-over is lost.
    pub previous: Option<(Secret, i64)>,
    /// The secret Stripe or Slack issued, once the owner has set it.
    pub provider: Option<Secret>,
}

impl Keys {
    /// Opens what can verify at `now_ms`: a previous secret past its overlap is not opened.
    pub fn open(
        key: &MasterKey,
        id: &WebhookId,
        sealed: &SealedSecrets,
        now_ms: i64,
    ) -> Result<Self, CryptoError> {
        let signing_aad = signing_aad(id);
        let previous = match (&sealed.previous, sealed.previous_until) {
            (Some(previous), Some(until)) if now_ms < until => {
                Some((key.open(previous, &signing_aad)?, until))
            }
            _ => None,
        };
        let provider = match &sealed.provider {
            Some(p) => Some(key.open(p, &provider_aad(id))?),
            None => None,
        };
        Ok(Self {
            signing: key.open(&sealed.signing, &signing_aad)?,
            previous,
            provider,
        })
    }

    /// The signing secrets that verify at `now_ms`: the current one, and the previous one
    /// while its overlap lasts (and not a millisecond after).
    pub fn signing_at(&self, now_ms: i64) -> impl Iterator<Item = &Secret> {
        let previous = self
            .previous
            .as_ref()
            .filter(|(_, until)| now_ms < *until)
            .map(|(secret, _)| secret);
        std::iter::once(&self.signing).chain(previous)
    }
}

/// What ingest learns about a request from its provider's scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub verdict: Verdict,
    /// The event type, where the provider states it.
    pub event: Option<String>,
    /// The provider's own id of this delivery, the same on its retries: the dedupe key.
    pub provider_delivery_id: Option<String>,
    /// Slack's `url_verification`: the challenge to answer instead of queueing.
    pub challenge: Option<String>,
}

impl Provider {
    /// Verifies a request and names what it carries. `now_ms` is the wall clock in ms.
    pub fn inspect(self, headers: &HeaderMap, body: &[u8], keys: &Keys, now_ms: i64) -> Inspection {
        match self {
            Self::Github => github::inspect(headers, body, keys, now_ms),
            Self::Stripe => stripe::inspect(headers, body, keys, now_ms),
            Self::Slack => slack::inspect(headers, body, keys, now_ms),
            Self::Generic => generic::inspect(headers, body, keys, now_ms),
        }
    }
}

/// A header's value (`name` spelled as its provider documents it; the lookup ignores
/// case): `Ok(None)` if absent, a reason if it is not visible ASCII (a value no provider
/// sends, so it is malformed, not merely mismatched).
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| format!("the {name} header is not valid text")),
    }
}

/// A header that must be present.
pub(crate) fn required_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, String> {
    header(headers, name)?.ok_or_else(|| format!("the {name} header is missing"))
}

/// A Unix timestamp in seconds, as senders write it: decimal digits only.
pub(crate) fn parse_timestamp(value: &str, what: &str) -> Result<i64, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} is not a Unix timestamp in seconds"));
    }
    value
        .parse::<i64>()
        .map_err(|_| format!("{what} is not a Unix timestamp in seconds"))
}

/// Refuses a timestamp more than `tolerance_secs` away from now, either way: an old one is
/// a replay, and one from the future would stay replayable for longer than the window.
pub(crate) fn check_tolerance(
    timestamp: i64,
    now_ms: i64,
    tolerance_secs: i64,
) -> Result<(), String> {
    let now = now_ms.div_euclid(1000);
    // Both are non-negative, so the difference cannot overflow.
    let age = now - timestamp;
    if age > tolerance_secs {
        Err(format!(
            "the signature timestamp is {age} s old, past the {tolerance_secs} s tolerance (a replay, or the sender's clock is off)"
        ))
    } else if -age > tolerance_secs {
        Err(format!(
            "the signature timestamp is {} s in the future, past the {tolerance_secs} s tolerance (the sender's clock is off)",
            -age
        ))
    } else {
        Ok(())
    }
}

/// HMAC-SHA256 of the concatenated parts. (HMAC takes a key of any length, so this is
/// never `None` in practice; a caller treats `None` as "matches nothing".)
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Option<[u8; 32]> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac.finalize().into_bytes().into())
}

/// Whether any of `signatures` is the MAC of `parts` under any of `keys`, each comparison
/// in constant time.
pub(crate) fn any_matches<'k>(
    keys: impl IntoIterator<Item = &'k [u8]>,
    parts: &[&[u8]],
    signatures: &[Vec<u8>],
) -> bool {
    keys.into_iter().any(|key| {
        hmac_sha256(key, parts)
            .is_some_and(|expected| signatures.iter().any(|sig| ct_eq(&expected, sig)))
    })
}

#[cfg(test)]
pub(crate) mod test_support {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    use super::Keys;
    use crate::crypto::Secret;

    pub fn keys(signing: &str, previous: Option<(&str, i64)>, provider: Option<&str>) -> Keys {
        Keys {
            signing: Secret::new(signing.to_owned()),
            previous: previous.map(|(s, until)| (Secret::new(s.to_owned()), until)),
            provider: provider.map(|p| Secret::new(p.to_owned())),
        }
    }

    /// A header as a test writes it: name and raw value.
    pub type Header<'a> = (&'a str, &'a [u8]);

    pub fn headers(pairs: &[Header]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }
}
