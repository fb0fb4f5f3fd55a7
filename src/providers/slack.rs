//! Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256("v0:{ts}:{body}")>` with the timestamp
//! in `X-Slack-Request-Timestamp`, keyed with the app's signing secret (set on the webhook
//! as its provider secret), within 5 minutes of now.
//!
//! Slack checks a Request URL with a `url_verification` callback whose `challenge` must be
//! echoed; the hub answers it itself, so it is named here and never queued.

use actix_web::http::header::HeaderMap;

use super::{
    any_matches, check_tolerance, envelope::Envelope, parse_timestamp, required_header, Inspection,
    Keys, Verdict,
};

pub const SIGNATURE_HEADER: &str = "X-Slack-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Slack-Request-Timestamp";
pub const TOLERANCE_SECS: i64 = 300;

pub fn inspect(headers: &HeaderMap, body: &[u8], keys: &Keys, now_ms: i64) -> Inspection {
    let envelope = describe(body);
    let challenge = if envelope.kind.as_deref() == Some("url_verification") {
        envelope.challenge
    } else {
        None
    };
    Inspection {
        verdict: match &keys.provider {
            None => Verdict::Unverifiable,
            Some(secret) => verify(headers, body, secret.expose(), now_ms)
                .map_or_else(Verdict::Rejected, |()| Verdict::Verified),
        },
        // The inner event says what happened (`app_mention`); the outer type only that it
        // is an event callback.
        event: envelope.event_kind.or(envelope.kind),
        provider_delivery_id: envelope.event_id.filter(|id| !id.is_empty()),
        challenge,
    }
}

/// Events API callbacks are JSON; interactivity posts are a form whose `payload` field is
/// the JSON (slash commands carry no type at all).
fn describe(body: &[u8]) -> Envelope {
    let envelope = Envelope::parse(body);
    if envelope != Envelope::default() {
        return envelope;
    }
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()
        .and_then(|fields| fields.into_iter().find(|(k, _)| k == "payload"))
        .map(|(_, payload)| {
            let inner = Envelope::parse(payload.as_bytes());
            // Only the type: an interactive payload has no `event_id` and no challenge.
            Envelope {
                kind: inner.kind,
                ..Envelope::default()
            }
        })
        .unwrap_or_default()
}

pub fn verify(headers: &HeaderMap, body: &[u8], secret: &str, now_ms: i64) -> Result<(), String> {
    let timestamp = required_header(headers, TIMESTAMP_HEADER)?;
    let value = required_header(headers, SIGNATURE_HEADER)?;
    let ts = parse_timestamp(timestamp, "the X-Slack-Request-Timestamp header")?;
    let signature = value
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .filter(|s| s.len() == 32)
        .ok_or_else(|| format!("the {SIGNATURE_HEADER} header must be v0= and 64 hex digits"))?;
    check_tolerance(ts, now_ms, TOLERANCE_SECS)?;
    if any_matches(
        [secret.as_bytes()],
        &[b"v0:", timestamp.as_bytes(), b":", body],
        &[signature],
    ) {
        Ok(())
    } else {
        Err(
            "X-Slack-Signature does not match: the body was changed, or the provider secret set on this webhook is not the Slack app's signing secret"
                .to_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::{headers, keys, Header};

    /// Slack's example from "Verifying requests from Slack".
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const NOW: i64 = 1_531_420_618_000 + 30_000;

    fn vector_headers(ts: &str, sig: &str) -> actix_web::http::header::HeaderMap {
        headers(&[
            (TIMESTAMP_HEADER, ts.as_bytes()),
            (SIGNATURE_HEADER, sig.as_bytes()),
        ])
    }

    #[test]
    fn the_published_vector_verifies() {
        let h = vector_headers(TS, SIGNATURE);
        let i = inspect(
            &h,
            BODY.as_bytes(),
            &keys("whsec_ours", None, Some(SECRET)),
            NOW,
        );
        assert_eq!(i.verdict, Verdict::Verified);
        // A slash command names no event and is never a challenge.
        assert_eq!(
            (i.event, i.provider_delivery_id, i.challenge),
            (None, None, None)
        );
    }

    #[test]
    fn tampering_another_secret_and_stale_timestamps_are_refused() {
        let h = vector_headers(TS, SIGNATURE);
        let tampered = BODY.replace("roadrunner", "coyote");
        let e = verify(&h, tampered.as_bytes(), SECRET, NOW).unwrap_err();
        assert!(e.contains("does not match"), "{e}");
        assert!(verify(&h, BODY.as_bytes(), "8f742231b10e8888abcd99yyyzzz85a6", NOW).is_err());
        let ts = 1_531_420_618_i64;
        assert_eq!(
            verify(&h, BODY.as_bytes(), SECRET, (ts + 300) * 1000),
            Ok(())
        );
        let e = verify(&h, BODY.as_bytes(), SECRET, (ts + 301) * 1000).unwrap_err();
        assert!(e.contains("old"), "{e}");
        let e = verify(&h, BODY.as_bytes(), SECRET, (ts - 301) * 1000).unwrap_err();
        assert!(e.contains("future"), "{e}");
        // The timestamp is signed: a fresh one on an old signature does not verify.
        let moved = vector_headers("1531420619", SIGNATURE);
        assert!(verify(&moved, BODY.as_bytes(), SECRET, NOW).is_err());
    }

    #[test]
    fn malformed_headers_are_refused_with_a_reason() {
        let cases: [(&[Header], &str); 7] = [
            (
                &[(SIGNATURE_HEADER, SIGNATURE.as_bytes())],
                "X-Slack-Request-Timestamp header is missing",
            ),
            (
                &[(TIMESTAMP_HEADER, TS.as_bytes())],
                "X-Slack-Signature header is missing",
            ),
            (
                &[
                    (TIMESTAMP_HEADER, b"soon"),
                    (SIGNATURE_HEADER, SIGNATURE.as_bytes()),
                ],
                "not a Unix timestamp",
            ),
            (
                &[
                    (TIMESTAMP_HEADER, b"1e9"),
                    (SIGNATURE_HEADER, SIGNATURE.as_bytes()),
                ],
                "not a Unix timestamp",
            ),
            (
                &[
                    (TIMESTAMP_HEADER, TS.as_bytes()),
                    (
                        SIGNATURE_HEADER,
                        b"a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
                    ),
                ],
                "v0=",
            ),
            (
                &[
                    (TIMESTAMP_HEADER, TS.as_bytes()),
                    (SIGNATURE_HEADER, b"v0="),
                ],
                "v0=",
            ),
            (
                &[
                    (TIMESTAMP_HEADER, TS.as_bytes()),
                    (SIGNATURE_HEADER, b"v1=a2114d57"),
                ],
                "v0=",
            ),
        ];
        for (pairs, expected) in cases {
            let e = verify(&headers(pairs), BODY.as_bytes(), SECRET, NOW).unwrap_err();
            assert!(e.contains(expected), "{pairs:?}: {e}");
        }
    }

    #[test]
    fn events_name_their_inner_type_id_and_challenge() {
        let k = keys("whsec_ours", None, None);
        let body = br#"{"token":"t","team_id":"T1","type":"event_callback","event_id":"Ev08MFMKH6","event":{"type":"app_mention","text":"hi"}}"#;
        let i = inspect(&headers(&[]), body, &k, NOW);
        assert_eq!(i.verdict, Verdict::Unverifiable);
        assert_eq!(i.event.as_deref(), Some("app_mention"));
        assert_eq!(i.provider_delivery_id.as_deref(), Some("Ev08MFMKH6"));
        assert_eq!(i.challenge, None);

        let body = br#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        let i = inspect(&headers(&[]), body, &k, NOW);
        assert_eq!(i.event.as_deref(), Some("url_verification"));
        assert_eq!(
            i.challenge.as_deref(),
            Some("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
        );
        // A challenge field on anything but url_verification is not answered.
        let body = br#"{"type":"event_callback","challenge":"x","event":{"type":"message"}}"#;
        assert_eq!(inspect(&headers(&[]), body, &k, NOW).challenge, None);

        // Interactivity: a form whose payload is JSON.
        let body = b"payload=%7B%22type%22%3A%22block_actions%22%2C%22event_id%22%3A%22x%22%7D";
        let i = inspect(&headers(&[]), body, &k, NOW);
        assert_eq!(i.event.as_deref(), Some("block_actions"));
        assert_eq!(i.provider_delivery_id, None);
    }
}

#[cfg(test)]
mod proptests {
    use proptest::{prelude::*, sample::Index};
    use serde_json::json;

    use super::*;
    use crate::providers::test_support::{arb, headers, keys};

    fn v0(secret: &str, ts: &str, body: &[u8]) -> String {
        let mac = arb::mac(secret.as_bytes(), &[b"v0:", ts.as_bytes(), b":", body]);
        format!("v0={}", hex::encode(mac))
    }

    fn signature_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            arb::header_value(),
            arb::hexish(0..=80).prop_map(|h| format!("v0={h}").into_bytes()),
            "[0-9a-fA-F]{64}".prop_map(|h| format!("v0={h}").into_bytes()),
        ]
    }

    /// Bodies as Slack sends them (Events API JSON, an interactivity form), or anything.
    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            arb::body(),
            (any::<String>(), any::<String>()).prop_map(|(kind, id)| {
                json!({"type": kind, "event_id": id, "event": {"type": "message"}})
                    .to_string()
                    .into_bytes()
            }),
            any::<String>().prop_map(|payload| {
                serde_urlencoded::to_string([("payload", payload)])
                    .unwrap()
                    .into_bytes()
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(arb::CASES))]

        #[test]
        fn any_request_is_answered_and_a_guessed_signature_never_verifies(
            timestamp in arb::timestamp_text(),
            signature in signature_value(),
            body in body(),
            secret in proptest::option::of(arb::text_secret()),
            now in arb::now_ms(),
        ) {
            let h = headers(&[(TIMESTAMP_HEADER, &timestamp), (SIGNATURE_HEADER, &signature)]);
            let i = inspect(&h, &body, &keys("whsec_ours", None, secret.as_deref()), now);
            let expected_unverifiable = secret.is_none();
            prop_assert_eq!(i.verdict == Verdict::Unverifiable, expected_unverifiable);
            prop_assert_ne!(i.verdict, Verdict::Verified);
        }

        #[test]
        fn a_signed_body_verifies_with_its_secret_only_and_only_unchanged(
            body in body(),
            secret in arb::text_secret(),
            other in arb::text_secret(),
            (t, offset) in arb::signed_at(),
            at in any::<Index>(),
            delta in 1u8..=255,
        ) {
            let now = t * 1000 + offset;
            let ts = t.to_string();
            let sig = v0(&secret, &ts, &body);
            let h = headers(&[(TIMESTAMP_HEADER, ts.as_bytes()), (SIGNATURE_HEADER, sig.as_bytes())]);
            prop_assert_eq!(verify(&h, &body, &secret, now), Ok(()));
            if other != secret {
                prop_assert!(verify(&h, &body, &other, now).is_err());
            }
            if let Some(changed) = arb::flip(&body, at, delta) {
                prop_assert!(verify(&h, &changed, &secret, now).is_err());
            }
            let moved = (t + 1).to_string();
            let moved = headers(&[(TIMESTAMP_HEADER, moved.as_bytes()), (SIGNATURE_HEADER, sig.as_bytes())]);
            prop_assert!(verify(&moved, &body, &secret, now).is_err());
        }

        #[test]
        fn an_interactivity_form_names_its_payloads_type(kind in any::<String>(), id in any::<String>()) {
            let payload = json!({"type": kind, "event_id": id}).to_string();
            let body = serde_urlencoded::to_string([("token", "x"), ("payload", &payload)]).unwrap();
            let i = inspect(&headers(&[]), body.as_bytes(), &keys("whsec_ours", None, None), 0);
            prop_assert_eq!(i.event, Some(kind));
            // Only the type: an interactive payload is not an Events API delivery.
            prop_assert_eq!(i.provider_delivery_id, None);
            prop_assert_eq!(i.challenge, None);
        }
    }
}
