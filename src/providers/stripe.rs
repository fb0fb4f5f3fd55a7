//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, each `v1` a hex
//! HMAC-SHA256 of `"{t}.{body}"` keyed with the endpoint secret Stripe issued (`whsec_…`,
//! used as UTF-8 with its prefix). Stripe sends one `v1` per active secret while it rolls
//! one, so any may match; `v0` (a test-mode scheme) and unknown entries are ignored. The
//! timestamp must be within 300 s of now.

use actix_web::http::header::HeaderMap;

use super::{
    any_matches, check_tolerance, envelope::Envelope, parse_timestamp, required_header, Inspection,
    Keys, Verdict,
};

pub const SIGNATURE_HEADER: &str = "Stripe-Signature";
pub const TOLERANCE_SECS: i64 = 300;

pub fn inspect(headers: &HeaderMap, body: &[u8], keys: &Keys, now_ms: i64) -> Inspection {
    let envelope = Envelope::parse(body);
    Inspection {
        verdict: match &keys.provider {
            None => Verdict::Unverifiable,
            Some(secret) => verify(headers, body, secret.expose(), now_ms)
                .map_or_else(Verdict::Rejected, |()| Verdict::Verified),
        },
        event: envelope.kind,
        provider_delivery_id: envelope.id.filter(|id| !id.is_empty()),
        challenge: None,
    }
}

pub fn verify(headers: &HeaderMap, body: &[u8], secret: &str, now_ms: i64) -> Result<(), String> {
    let value = required_header(headers, SIGNATURE_HEADER)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in value.split(',') {
        match item.trim().split_once('=') {
            Some(("t", t)) if timestamp.is_none() => timestamp = Some(t),
            // A `v1` that is not 32 bytes of hex cannot match; it is skipped like an
            // unknown scheme, so that one odd entry does not hide a good one.
            Some(("v1", sig)) => {
                if let Some(sig) = hex::decode(sig).ok().filter(|s| s.len() == 32) {
                    signatures.push(sig);
                }
            }
            _ => {}
        }
    }
    let timestamp =
        timestamp.ok_or_else(|| format!("the {SIGNATURE_HEADER} header has no t= timestamp"))?;
    let t = parse_timestamp(timestamp, "the Stripe-Signature t=")?;
    if signatures.is_empty() {
        return Err(format!(
            "the {SIGNATURE_HEADER} header has no v1= signature of 64 hex digits"
        ));
    }
    check_tolerance(t, now_ms, TOLERANCE_SECS)?;
    if any_matches(
        [secret.as_bytes()],
        &[timestamp.as_bytes(), b".", body],
        &signatures,
    ) {
        Ok(())
    } else {
        Err(
            "no v1 signature matches: the body was changed, or the provider secret set on this webhook is not the endpoint's signing secret in Stripe"
                .to_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{
        hmac_sha256,
        test_support::{headers, keys},
    };

    const SECRET: &str = "whsec_test_secret";
    const T: i64 = 1_782_907_200;
    const NOW: i64 = T * 1000 + 12_345;
    const BODY: &[u8] = br#"{"id":"evt_1Nq","object":"event","type":"payment_intent.succeeded"}"#;

    /// A header built the way Stripe documents it ("Verify webhook signatures manually"):
    /// `t=` then `v1=` hex HMAC-SHA256 of `"{t}.{payload}"` with the endpoint secret.
    fn stripe_header(secret: &str, t: i64, body: &[u8]) -> String {
        let mac = hmac_sha256(secret.as_bytes(), &[format!("{t}.").as_bytes(), body]).unwrap();
        format!("t={t},v1={}", hex::encode(mac))
    }

    #[test]
    fn a_documented_header_verifies_and_names_the_event() {
        let h = headers(&[(SIGNATURE_HEADER, stripe_header(SECRET, T, BODY).as_bytes())]);
        let i = inspect(&h, BODY, &keys("whsec_ours", None, Some(SECRET)), NOW);
        assert_eq!(i.verdict, Verdict::Verified);
        assert_eq!(i.event.as_deref(), Some("payment_intent.succeeded"));
        assert_eq!(i.provider_delivery_id.as_deref(), Some("evt_1Nq"));
    }

    #[test]
    fn the_hmac_is_the_one_stripe_documents() {
        // Independent of our hmac helper: a fixed digest for fixed inputs, computed once
        // with `printf '1782907200.{}' | openssl dgst -sha256 -hmac whsec_test_secret`.
        let h = headers(&[(
            SIGNATURE_HEADER,
            b"t=1782907200,v1=1500dec5eac35d70d005729cd230a02c96fc10a6fcc9e54c5a3dc7c352c24599",
        )]);
        let expected = hex::encode(hmac_sha256(SECRET.as_bytes(), &[b"1782907200.{}"]).unwrap());
        assert_eq!(
            expected,
            "1500dec5eac35d70d005729cd230a02c96fc10a6fcc9e54c5a3dc7c352c24599"
        );
        assert_eq!(verify(&h, b"{}", SECRET, NOW), Ok(()));
    }

    #[test]
    fn any_v1_may_match_and_v0_is_ignored() {
        let good = stripe_header(SECRET, T, BODY);
        let good_sig = good.split_once(",v1=").unwrap().1;
        let rolled = format!(
            "t={T},v1={},v1={good_sig},v0={}",
            "ab".repeat(32),
            "cd".repeat(32)
        );
        assert_eq!(
            verify(
                &headers(&[(SIGNATURE_HEADER, rolled.as_bytes())]),
                BODY,
                SECRET,
                NOW
            ),
            Ok(())
        );
        // A matching signature offered only as v0 does not count.
        let v0_only = format!("t={T},v0={good_sig}");
        let e = verify(
            &headers(&[(SIGNATURE_HEADER, v0_only.as_bytes())]),
            BODY,
            SECRET,
            NOW,
        )
        .unwrap_err();
        assert!(e.contains("no v1="), "{e}");
        // Spaces after commas, as some proxies write them, are tolerated.
        let spaced = format!("t={T}, v1={good_sig}");
        assert_eq!(
            verify(
                &headers(&[(SIGNATURE_HEADER, spaced.as_bytes())]),
                BODY,
                SECRET,
                NOW
            ),
            Ok(())
        );
    }

    #[test]
    fn tampering_another_secret_and_stale_timestamps_are_refused() {
        let h = headers(&[(SIGNATURE_HEADER, stripe_header(SECRET, T, BODY).as_bytes())]);
        let e = verify(&h, b"{\"id\":\"evt_2\"}", SECRET, NOW).unwrap_err();
        assert!(e.contains("no v1 signature matches"), "{e}");
        assert!(verify(&h, BODY, "whsec_other", NOW).is_err());
        // 300 s either way is in; 301 is out.
        assert_eq!(verify(&h, BODY, SECRET, (T + 300) * 1000), Ok(()));
        assert_eq!(verify(&h, BODY, SECRET, (T - 300) * 1000), Ok(()));
        let e = verify(&h, BODY, SECRET, (T + 301) * 1000).unwrap_err();
        assert!(e.contains("301 s old"), "{e}");
        let e = verify(&h, BODY, SECRET, (T - 301) * 1000).unwrap_err();
        assert!(e.contains("in the future"), "{e}");
        // The timestamp is signed: moving it breaks the signature.
        let sig = stripe_header(SECRET, T, BODY);
        let moved = sig.replacen(&T.to_string(), &(T + 1).to_string(), 1);
        assert!(verify(
            &headers(&[(SIGNATURE_HEADER, moved.as_bytes())]),
            BODY,
            SECRET,
            NOW
        )
        .is_err());
    }

    #[test]
    fn without_a_provider_secret_the_request_is_unverifiable() {
        let h = headers(&[(SIGNATURE_HEADER, stripe_header(SECRET, T, BODY).as_bytes())]);
        let i = inspect(&h, BODY, &keys("whsec_ours", None, None), NOW);
        assert_eq!(i.verdict, Verdict::Unverifiable);
        assert_eq!(i.event.as_deref(), Some("payment_intent.succeeded"));
        // The webhook's own signing secret is not Stripe's: it does not verify a Stripe post.
        let h = headers(&[(
            SIGNATURE_HEADER,
            stripe_header("whsec_ours", T, BODY).as_bytes(),
        )]);
        let i = inspect(&h, BODY, &keys("whsec_ours", None, Some(SECRET)), NOW);
        assert!(matches!(i.verdict, Verdict::Rejected(_)));
    }

    #[test]
    fn malformed_headers_are_refused_with_a_reason() {
        let cases: [(&[u8], &str); 8] = [
            (b"", "no t="),
            (b"garbage", "no t="),
            (b"v1=abcd", "no t="),
            (b"t=,v1=ab", "not a Unix timestamp"),
            (b"t=-5,v1=ab", "not a Unix timestamp"),
            (b"t=99999999999999999999999,v1=ab", "not a Unix timestamp"),
            (b"t=1782907200,v1=zz", "no v1="),
            (b"t=1782907200,v1=\xc3\xa9", "not valid text"),
        ];
        for (value, expected) in cases {
            let e = verify(&headers(&[(SIGNATURE_HEADER, value)]), BODY, SECRET, NOW).unwrap_err();
            assert!(e.contains(expected), "{value:?}: {e}");
        }
        let e = verify(&headers(&[]), BODY, SECRET, NOW).unwrap_err();
        assert!(e.contains("missing"), "{e}");
    }
}

#[cfg(test)]
mod proptests {
    use proptest::{prelude::*, sample::Index};

    use super::*;
    use crate::providers::test_support::{arb, headers, keys};

    fn v1(secret: &str, t: &str, body: &[u8]) -> String {
        hex::encode(arb::mac(secret.as_bytes(), &[t.as_bytes(), b".", body]))
    }

    /// One comma-separated entry of `Stripe-Signature`, well-formed or not.
    fn entry() -> impl Strategy<Value = String> {
        let text =
            || arb::header_value().prop_map(|v| String::from_utf8_lossy(&v).replace(',', ""));
        prop_oneof![
            arb::timestamp_text()
                .prop_map(|t| format!("t={}", String::from_utf8_lossy(&t).replace(',', ""))),
            "[0-9a-fA-F]{64}".prop_map(|h| format!("v1={h}")),
            arb::hexish(0..=80).prop_map(|h| format!("v1={h}")),
            "[0-9a-f]{64}".prop_map(|h| format!("v0={h}")),
            (text(), text()).prop_map(|(k, v)| format!("{k}={v}")),
            text(),
        ]
    }

    fn signature_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            arb::header_value(),
            (prop::collection::vec(entry(), 0..6), prop::bool::ANY).prop_map(
                |(entries, spaced)| { entries.join(if spaced { ", " } else { "," }).into_bytes() }
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(arb::CASES))]

        #[test]
        fn any_request_is_answered_and_a_guessed_signature_never_verifies(
            signature in signature_value(),
            body in arb::body(),
            secret in proptest::option::of(arb::text_secret()),
            now in arb::now_ms(),
        ) {
            let h = headers(&[(SIGNATURE_HEADER, &signature)]);
            let i = inspect(&h, &body, &keys("whsec_ours", None, secret.as_deref()), now);
            let expected_unverifiable = secret.is_none();
            prop_assert_eq!(i.verdict == Verdict::Unverifiable, expected_unverifiable);
            prop_assert_ne!(i.verdict, Verdict::Verified);
        }

        #[test]
        fn a_signed_body_verifies_with_its_secret_only_and_only_unchanged(
            body in arb::body(),
            secret in arb::text_secret(),
            other in arb::text_secret(),
            (t, offset) in arb::signed_at(),
            decoys in prop::collection::vec("[0-9a-f]{64}", 0..3),
            at in any::<Index>(),
            delta in 1u8..=255,
        ) {
            let now = t * 1000 + offset;
            let ts = t.to_string();
            // Stripe sends one v1 per active secret while it rolls one: ours may be any.
            let mut entries: Vec<String> = decoys.iter().map(|d| format!("v1={d}")).collect();
            let place = at.index(entries.len() + 1);
            entries.insert(place, format!("v1={}", v1(&secret, &ts, &body)));
            let value = format!("t={ts},{}", entries.join(","));
            let h = headers(&[(SIGNATURE_HEADER, value.as_bytes())]);
            prop_assert_eq!(verify(&h, &body, &secret, now), Ok(()));
            prop_assert_eq!(
                inspect(&h, &body, &keys("whsec_ours", None, Some(&secret)), now).verdict,
                Verdict::Verified
            );
            if other != secret {
                prop_assert!(verify(&h, &body, &other, now).is_err());
            }
            if let Some(changed) = arb::flip(&body, at, delta) {
                prop_assert!(verify(&h, &changed, &secret, now).is_err());
            }
            // The timestamp is signed too.
            let moved = value.replacen(&format!("t={ts}"), &format!("t={}", t + 1), 1);
            let moved = headers(&[(SIGNATURE_HEADER, moved.as_bytes())]);
            prop_assert!(verify(&moved, &body, &secret, now).is_err());
        }
    }
}
