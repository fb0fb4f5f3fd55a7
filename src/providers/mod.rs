//! Providers: who sends to a webhook and how their requests are signed.
//!
//! One module per provider's scheme ([`github`], [`stripe`], [`slack`], [`generic`] for
//! Standard Webhooks) behind one interface, [`Provider::inspect`]: given a request's headers
//! and raw body, the webhook's opened secrets and the time, it says whether the request is
//! verified, rejected (and why) or unverifiable, and names the event and the provider's own
//! delivery id. Verification only reads; what to do with the verdict is ingest's business.
//! Signing what the hub hands to an agent, the other direction, is
//! [`crate::signer`]'s. [`samples`] makes requests as each provider would send them, for
//! `hookhub trigger` and the dashboard's test events.

use actix_web::http::header::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    crypto::{ct_eq, Keys},
    domain::Provider,
};

pub mod envelope;
pub mod generic;
pub mod github;
pub mod samples;
pub mod slack;
pub mod stripe;

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

    /// Strategies for the property tests of each scheme: what a sender can put in a
    /// request, and keys and clocks as the hub has them.
    pub mod arb {
        use std::ops::RangeInclusive;

        use base64::{engine::general_purpose::STANDARD, Engine};
        use hmac::{Hmac, Mac};
        use proptest::{prelude::*, sample::Index};
        use sha2::Sha256;

        /// Cases per property: enough to reach the odd branches, few enough to run in a
        /// blink with the rest of the unit tests.
        pub const CASES: u32 = 256;

        /// Any bytes a header value can hold: visible ASCII, space, tab and obs-text. Short
        /// ones often, where the off-by-one slips hide.
        pub fn header_value() -> impl Strategy<Value = Vec<u8>> {
            let byte = || prop_oneof![0x20u8..0x7f, Just(b'\t'), 0x80u8..=0xff];
            prop_oneof![
                prop::collection::vec(byte(), 0..4),
                prop::collection::vec(byte(), 0..96),
            ]
        }

        /// Hex digits of either case, and now and then a character that is not one; short
        /// ones often.
        pub fn hexish(len: RangeInclusive<usize>) -> impl Strategy<Value = String> {
            let char = || {
                prop_oneof![
                    8 => prop::char::ranges(vec!['0'..='9', 'a'..='f', 'A'..='F'].into()),
                    1 => Just('g'),
                    1 => Just(' '),
                ]
            };
            let short = *len.start()..=(*len.start() + 3).min(*len.end());
            prop_oneof![
                prop::collection::vec(char(), short),
                prop::collection::vec(char(), len),
            ]
            .prop_map(|chars| chars.into_iter().collect())
        }

        /// A timestamp field: digits (some too many for an i64), or anything.
        pub fn timestamp_text() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                "[0-9]{0,24}".prop_map(String::into_bytes),
                (0i64..=4_102_444_800).prop_map(|t| t.to_string().into_bytes()),
                header_value(),
            ]
        }

        /// Any bytes, short ones often.
        pub fn body() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..4),
                prop::collection::vec(any::<u8>(), 0..512),
            ]
        }

        /// Any wall clock from 1970 on, as ingest reads it.
        pub fn now_ms() -> impl Strategy<Value = i64> {
            0..=i64::MAX
        }

        /// A signing time through 2100, and an offset of the hub's clock from it (ms)
        /// within the 300 s the timestamped schemes allow either way.
        pub fn signed_at() -> impl Strategy<Value = (i64, i64)> {
            (0i64..=4_102_444_800, -300_000i64..=300_000)
        }

        /// A secret as a person pastes it (GitHub's) or a provider issues it (Stripe's,
        /// Slack's): printable text, at most an HMAC block long.
        pub fn text_secret() -> impl Strategy<Value = String> {
            "[!-~]{1,64}"
        }

        /// A `whsec_` signing secret as the hub makes it: 32 random bytes. (Of a fixed
        /// length because HMAC pads a short key with zeros: `k` and `k\0` are one key.)
        pub fn whsec() -> impl Strategy<Value = String> {
            any::<[u8; 32]>().prop_map(|k| format!("whsec_{}", STANDARD.encode(k)))
        }

        /// HMAC-SHA256 made here, not with the code under test.
        pub fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
            for part in parts {
                mac.update(part);
            }
            mac.finalize().into_bytes().into()
        }

        /// `bytes` with the byte at `at` changed (`delta` is never 0); `None` if empty.
        pub fn flip(bytes: &[u8], at: Index, delta: u8) -> Option<Vec<u8>> {
            if bytes.is_empty() {
                return None;
            }
            let mut changed = bytes.to_vec();
            changed[at.index(bytes.len())] ^= delta;
            Some(changed)
        }
    }
}
