//! Generic: Standard Webhooks. `webhook-id`, `webhook-timestamp` and `webhook-signature`,
//! the last a space-separated list of `v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}")>`
//! keyed with the base64-decoded part of the signing secret after `whsec_`. Any `v1` entry
//! may match (a sender rotating its secret signs with both); entries of other versions
//! (`v1a` is asymmetric) are ignored. The timestamp must be within 5 minutes of now.

use actix_web::http::header::HeaderMap;
use base64::{engine::general_purpose::STANDARD, Engine};

use super::{
    any_matches, check_tolerance, envelope::Envelope, header, parse_timestamp, required_header,
    Inspection, Keys, Verdict,
};
use crate::crypto::standard_webhooks_key;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";
pub const TOLERANCE_SECS: i64 = 300;

pub fn inspect(headers: &HeaderMap, body: &[u8], keys: &Keys, now_ms: i64) -> Inspection {
    Inspection {
        verdict: verify(headers, body, keys, now_ms)
            .map_or_else(Verdict::Rejected, |()| Verdict::Verified),
        event: Envelope::parse(body).kind,
        provider_delivery_id: header(headers, ID_HEADER)
            .ok()
            .flatten()
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        challenge: None,
    }
}

pub fn verify(headers: &HeaderMap, body: &[u8], keys: &Keys, now_ms: i64) -> Result<(), String> {
    let id = required_header(headers, ID_HEADER)?;
    let timestamp = required_header(headers, TIMESTAMP_HEADER)?;
    let value = required_header(headers, SIGNATURE_HEADER)?;
    if id.is_empty() {
        return Err(format!("the {ID_HEADER} header is empty"));
    }
    let ts = parse_timestamp(timestamp, "the webhook-timestamp header")?;
    let signatures: Vec<Vec<u8>> = value
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, sig)| STANDARD.decode(sig).ok())
        .filter(|sig| sig.len() == 32)
        .collect();
    if signatures.is_empty() {
        return Err(format!(
            "the {SIGNATURE_HEADER} header has no v1,<base64> signature of 32 bytes"
        ));
    }
    check_tolerance(ts, now_ms, TOLERANCE_SECS)?;
    let secrets: Vec<Vec<u8>> = keys
        .signing_at(now_ms)
        .filter_map(|s| standard_webhooks_key(s.expose()))
        .collect();
    if any_matches(
        secrets.iter().map(Vec::as_slice),
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
        &signatures,
    ) {
        Ok(())
    } else {
        Err(format!(
            "no v1 signature in {SIGNATURE_HEADER} matches: the body was changed, or it was signed with another secret than this webhook's signing secret"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::{headers, keys, Header};

    /// The Standard Webhooks reference libraries' test vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: &str = "1614265330";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    const NOW: i64 = 1_614_265_330_000 + 1_000;

    fn vector_headers(sig: &str) -> HeaderMap {
        headers(&[
            (ID_HEADER, ID.as_bytes()),
            (TIMESTAMP_HEADER, TS.as_bytes()),
            (SIGNATURE_HEADER, sig.as_bytes()),
        ])
    }

    #[test]
    fn the_published_vector_verifies() {
        let i = inspect(
            &vector_headers(SIGNATURE),
            BODY,
            &keys(SECRET, None, None),
            NOW,
        );
        assert_eq!(i.verdict, Verdict::Verified);
        assert_eq!(i.provider_delivery_id.as_deref(), Some(ID));
        assert_eq!(i.event, None);
        // Our own outbound signer agrees with the vector too.
        assert_eq!(
            crate::signer::standard_webhooks_signature(SECRET, ID, 1_614_265_330, BODY).as_deref(),
            Some(SIGNATURE)
        );
    }

    #[test]
    fn any_v1_entry_may_match_and_other_versions_are_ignored() {
        let k = keys(SECRET, None, None);
        let listed =
            format!("v1,Zm9vYmFyYmF6Zm9vYmFyYmF6Zm9vYmFyYmF6MTIzNDU= v1a,abc {SIGNATURE} v2,xyz");
        assert_eq!(verify(&vector_headers(&listed), BODY, &k, NOW), Ok(()));
        // The right digest under another version does not count.
        let other_version = SIGNATURE.replacen("v1,", "v1a,", 1);
        let e = verify(&vector_headers(&other_version), BODY, &k, NOW).unwrap_err();
        assert!(e.contains("no v1,<base64>"), "{e}");
    }

    #[test]
    fn tampering_another_secret_and_stale_timestamps_are_refused() {
        let k = keys(SECRET, None, None);
        let h = vector_headers(SIGNATURE);
        let e = verify(&h, br#"{"test": 2432232315}"#, &k, NOW).unwrap_err();
        assert!(
            e.contains("no v1 signature in webhook-signature matches"),
            "{e}"
        );
        let other = keys("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx", None, None);
        assert!(verify(&h, BODY, &other, NOW).is_err());
        let ts = 1_614_265_330_i64;
        assert_eq!(verify(&h, BODY, &k, (ts + 300) * 1000), Ok(()));
        assert!(verify(&h, BODY, &k, (ts + 301) * 1000)
            .unwrap_err()
            .contains("old"));
        assert!(verify(&h, BODY, &k, (ts - 301) * 1000)
            .unwrap_err()
            .contains("future"));
        // The id is signed: the same signature under another id does not verify.
        let moved = headers(&[
            (ID_HEADER, b"msg_other"),
            (TIMESTAMP_HEADER, TS.as_bytes()),
            (SIGNATURE_HEADER, SIGNATURE.as_bytes()),
        ]);
        assert!(verify(&moved, BODY, &k, NOW).is_err());
    }

    #[test]
    fn the_previous_secret_verifies_only_inside_its_overlap() {
        let h = vector_headers(SIGNATURE);
        let k = keys(
            "whsec_bmV3IHNlY3JldCBuZXcgc2VjcmV0IG5ldyBzZWNyZXQ=",
            Some((SECRET, NOW + 1)),
            None,
        );
        assert_eq!(verify(&h, BODY, &k, NOW), Ok(()));
        assert!(verify(&h, BODY, &k, NOW + 1).is_err());
    }

    #[test]
    fn malformed_headers_are_refused_with_a_reason() {
        let k = keys(SECRET, None, None);
        let id = (ID_HEADER, ID.as_bytes());
        let ts = (TIMESTAMP_HEADER, TS.as_bytes());
        let sig = (SIGNATURE_HEADER, SIGNATURE.as_bytes());
        let cases: Vec<(Vec<Header>, &str)> = vec![
            (vec![ts, sig], "webhook-id header is missing"),
            (vec![id, sig], "webhook-timestamp header is missing"),
            (vec![id, ts], "webhook-signature header is missing"),
            (
                vec![(ID_HEADER, b""), ts, sig],
                "webhook-id header is empty",
            ),
            (
                vec![id, (TIMESTAMP_HEADER, b"1614265330.5"), sig],
                "not a Unix timestamp",
            ),
            (vec![id, (TIMESTAMP_HEADER, b"\xff"), sig], "not valid text"),
            (
                vec![id, ts, (SIGNATURE_HEADER, b"garbage")],
                "no v1,<base64>",
            ),
            (
                vec![id, ts, (SIGNATURE_HEADER, b"v1,!!!notbase64")],
                "no v1,<base64>",
            ),
            (
                vec![id, ts, (SIGNATURE_HEADER, b"v1,AAAA")],
                "no v1,<base64>",
            ),
        ];
        for (pairs, expected) in cases {
            let e = verify(&headers(&pairs), BODY, &k, NOW).unwrap_err();
            assert!(e.contains(expected), "{pairs:?}: {e}");
        }
    }

    #[test]
    fn the_event_is_the_json_type_when_there_is_one() {
        let k = keys(SECRET, None, None);
        let i = inspect(
            &headers(&[]),
            br#"{"type":"invoice.paid","data":{}}"#,
            &k,
            NOW,
        );
        assert_eq!(i.event.as_deref(), Some("invoice.paid"));
        assert!(matches!(i.verdict, Verdict::Rejected(_)));
        assert_eq!(inspect(&headers(&[]), b"plain text", &k, NOW).event, None);
    }
}

#[cfg(test)]
mod proptests {
    use proptest::{prelude::*, sample::Index};

    use super::*;
    use crate::{
        providers::test_support::{arb, headers, keys},
        signer::standard_webhooks_signature,
    };

    /// One space-separated entry of `webhook-signature`, well-formed or not.
    fn entry() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<[u8; 32]>().prop_map(|s| format!("v1,{}", STANDARD.encode(s))),
            prop::collection::vec(any::<u8>(), 0..40)
                .prop_map(|s| format!("v1,{}", STANDARD.encode(s))),
            any::<[u8; 32]>().prop_map(|s| format!("v1a,{}", STANDARD.encode(s))),
            "v1,[A-Za-z0-9+/=!]{0,50}",
            // Visible ASCII, as a header value of any provider is: one that is not is
            // refused as malformed, whatever else the list holds.
            "[!-~]{0,30}",
        ]
    }

    fn signature_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            arb::header_value(),
            prop::collection::vec(entry(), 0..5).prop_map(|e| e.join(" ").into_bytes()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(arb::CASES))]

        #[test]
        fn any_request_is_answered_and_a_guessed_signature_never_verifies(
            id in arb::header_value(),
            timestamp in arb::timestamp_text(),
            signature in signature_value(),
            body in arb::body(),
            secret in arb::whsec(),
            now in arb::now_ms(),
        ) {
            let h = headers(&[
                (ID_HEADER, &id),
                (TIMESTAMP_HEADER, &timestamp),
                (SIGNATURE_HEADER, &signature),
            ]);
            let i = inspect(&h, &body, &keys(&secret, None, None), now);
            prop_assert_ne!(i.verdict, Verdict::Verified);
        }

        #[test]
        fn a_signed_body_verifies_with_its_secret_only_and_only_unchanged(
            body in arb::body(),
            secret in arb::whsec(),
            other in arb::whsec(),
            id in "[!-~]{1,40}",
            (t, offset) in arb::signed_at(),
            decoys in prop::collection::vec(entry(), 0..3),
            at in any::<Index>(),
            delta in 1u8..=255,
        ) {
            let now = t * 1000 + offset;
            let ts = t.to_string();
            let ours = standard_webhooks_signature(&secret, &id, t, &body).unwrap();
            // A sender rotating its secret lists both: ours may be anywhere in the list.
            let mut entries = decoys;
            entries.insert(at.index(entries.len() + 1), ours);
            let value = entries.join(" ");
            let signed = |id: &str, ts: &str| {
                headers(&[
                    (ID_HEADER, id.as_bytes()),
                    (TIMESTAMP_HEADER, ts.as_bytes()),
                    (SIGNATURE_HEADER, value.as_bytes()),
                ])
            };
            let h = signed(&id, &ts);
            prop_assert_eq!(verify(&h, &body, &keys(&secret, None, None), now), Ok(()));
            if other != secret {
                prop_assert!(verify(&h, &body, &keys(&other, None, None), now).is_err());
            }
            if let Some(changed) = arb::flip(&body, at, delta) {
                prop_assert!(verify(&h, &changed, &keys(&secret, None, None), now).is_err());
            }
            // The id and the timestamp are signed too.
            let moved = signed(&format!("{id}x"), &ts);
            prop_assert!(verify(&moved, &body, &keys(&secret, None, None), now).is_err());
            let moved = signed(&id, &(t + 1).to_string());
            prop_assert!(verify(&moved, &body, &keys(&secret, None, None), now).is_err());
        }
    }
}
