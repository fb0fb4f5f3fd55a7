//! GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>`, keyed with the webhook's
//! signing secret as the owner pasted it into GitHub's settings (the whole `whsec_…`
//! string). GitHub signs no timestamp, so there is no tolerance window; replays of a
//! delivery are caught by its `X-GitHub-Delivery` id instead.

use actix_web::http::header::HeaderMap;

use super::{any_matches, header, required_header, Inspection, Keys, Verdict};

pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
pub const EVENT_HEADER: &str = "X-GitHub-Event";
pub const DELIVERY_HEADER: &str = "X-GitHub-Delivery";

pub fn inspect(headers: &HeaderMap, body: &[u8], keys: &Keys, now_ms: i64) -> Inspection {
    Inspection {
        verdict: verify(headers, body, keys, now_ms)
            .map_or_else(Verdict::Rejected, |()| Verdict::Verified),
        event: header(headers, EVENT_HEADER)
            .ok()
            .flatten()
            .map(str::to_owned),
        provider_delivery_id: header(headers, DELIVERY_HEADER)
            .ok()
            .flatten()
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        challenge: None,
    }
}

pub fn verify(headers: &HeaderMap, body: &[u8], keys: &Keys, now_ms: i64) -> Result<(), String> {
    let value = required_header(headers, SIGNATURE_HEADER)
        .map_err(|e| format!("{e} (set the webhook's secret in GitHub to its signing secret)"))?;
    let hex_digest = value
        .strip_prefix("sha256=")
        .ok_or_else(|| format!("the {SIGNATURE_HEADER} header must be sha256=<hex>"))?;
    let signature = hex::decode(hex_digest)
        .ok()
        .filter(|s| s.len() == 32)
        .ok_or_else(|| {
            format!("the {SIGNATURE_HEADER} header must be sha256= and 64 hex digits")
        })?;
    let secrets = keys.signing_at(now_ms).map(|s| s.expose().as_bytes());
    if any_matches(secrets, &[body], &[signature]) {
        Ok(())
    } else {
        Err(format!(
            "{SIGNATURE_HEADER} does not match: the body was changed, or GitHub holds another secret than this webhook's signing secret"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::{headers, keys, Header};

    const NOW: i64 = 1_782_907_200_000;

    /// GitHub's published example ("Validating webhook deliveries").
    const VECTOR: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn the_published_vector_verifies() {
        let k = keys("It's a Secret to Everybody", None, None);
        let h = headers(&[
            (SIGNATURE_HEADER, VECTOR.as_bytes()),
            (EVENT_HEADER, b"push"),
            (DELIVERY_HEADER, b"72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ]);
        let i = inspect(&h, b"Hello, World!", &k, NOW);
        assert_eq!(i.verdict, Verdict::Verified);
        assert_eq!(i.event.as_deref(), Some("push"));
        assert_eq!(
            i.provider_delivery_id.as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
        // Upper-case hex is the same digest.
        let upper = format!("sha256={}", VECTOR[7..].to_uppercase());
        let h = headers(&[(SIGNATURE_HEADER, upper.as_bytes())]);
        assert_eq!(verify(&h, b"Hello, World!", &k, NOW), Ok(()));
    }

    #[test]
    fn a_changed_body_or_another_secret_is_refused() {
        let h = headers(&[(SIGNATURE_HEADER, VECTOR.as_bytes())]);
        let k = keys("It's a Secret to Everybody", None, None);
        let e = verify(&h, b"Hello, World?", &k, NOW).unwrap_err();
        assert!(e.contains("does not match"), "{e}");
        let other = keys("It's a secret to everybody", None, None);
        assert!(verify(&h, b"Hello, World!", &other, NOW).is_err());
    }

    #[test]
    fn the_previous_secret_verifies_only_inside_its_overlap() {
        let h = headers(&[(SIGNATURE_HEADER, VECTOR.as_bytes())]);
        let k = keys(
            "whsec_new",
            Some(("It's a Secret to Everybody", NOW + 1)),
            None,
        );
        assert_eq!(verify(&h, b"Hello, World!", &k, NOW), Ok(()));
        assert!(verify(&h, b"Hello, World!", &k, NOW + 1).is_err());
    }

    #[test]
    fn malformed_headers_are_refused_with_a_reason() {
        let k = keys("It's a Secret to Everybody", None, None);
        let cases: [(&[Header], &str); 6] = [
            (&[], "missing"),
            (&[(SIGNATURE_HEADER, b"")], "sha256="),
            (
                &[(
                    SIGNATURE_HEADER,
                    b"757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                )],
                "sha256=",
            ),
            (
                &[(
                    SIGNATURE_HEADER,
                    b"sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                )],
                "sha256=",
            ),
            (&[(SIGNATURE_HEADER, b"sha256=zz")], "64 hex digits"),
            (&[(SIGNATURE_HEADER, b"sha256=\xff\xfe")], "not valid text"),
        ];
        for (pairs, expected) in cases {
            let e = verify(&headers(pairs), b"Hello, World!", &k, NOW).unwrap_err();
            assert!(e.contains(expected), "{pairs:?}: {e}");
        }
        // A digest one byte short is malformed, not a near miss.
        let short = &VECTOR[..VECTOR.len() - 2];
        let e = verify(
            &headers(&[(SIGNATURE_HEADER, short.as_bytes())]),
            b"Hello, World!",
            &k,
            NOW,
        )
        .unwrap_err();
        assert!(e.contains("64 hex digits"), "{e}");
    }
}

#[cfg(test)]
mod proptests {
    use proptest::{prelude::*, sample::Index};

    use super::*;
    use crate::providers::test_support::{arb, headers, keys};

    /// What a sender may put in `X-Hub-Signature-256`: anything, something after the
    /// right prefix, or a digest of the right form but unknown to the key.
    fn signature_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            arb::header_value(),
            arb::header_value().prop_map(|v| [b"sha256=".as_slice(), &v].concat()),
            arb::hexish(0..=80).prop_map(|h| format!("sha256={h}").into_bytes()),
            "[0-9a-fA-F]{64}".prop_map(|h| format!("sha256={h}").into_bytes()),
        ]
    }

    fn signed(secret: &str, body: &[u8]) -> HeaderMap {
        let sig = format!(
            "sha256={}",
            hex::encode(arb::mac(secret.as_bytes(), &[body]))
        );
        headers(&[(SIGNATURE_HEADER, sig.as_bytes())])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(arb::CASES))]

        #[test]
        fn any_request_is_answered_and_a_guessed_signature_never_verifies(
            signature in signature_value(),
            event in arb::header_value(),
            delivery in arb::header_value(),
            body in arb::body(),
            secret in arb::text_secret(),
            now in arb::now_ms(),
        ) {
            let h = headers(&[
                (SIGNATURE_HEADER, &signature),
                (EVENT_HEADER, &event),
                (DELIVERY_HEADER, &delivery),
            ]);
            let i = inspect(&h, &body, &keys(&secret, None, None), now);
            prop_assert_ne!(i.verdict, Verdict::Verified);
        }

        #[test]
        fn a_signed_body_verifies_with_its_secret_only_and_only_unchanged(
            body in arb::body(),
            secret in arb::text_secret(),
            other in arb::text_secret(),
            at in any::<Index>(),
            delta in 1u8..=255,
            now in arb::now_ms(),
        ) {
            let h = signed(&secret, &body);
            prop_assert_eq!(verify(&h, &body, &keys(&secret, None, None), now), Ok(()));
            if other != secret {
                prop_assert!(verify(&h, &body, &keys(&other, None, None), now).is_err());
            }
            if let Some(changed) = arb::flip(&body, at, delta) {
                prop_assert!(verify(&h, &changed, &keys(&secret, None, None), now).is_err());
            }
        }

        #[test]
        fn the_previous_secret_verifies_until_its_overlap_ends_and_never_after(
            body in arb::body(),
            current in arb::text_secret(),
            previous in arb::text_secret(),
            until in 1i64..=i64::MAX,
            now in arb::now_ms(),
        ) {
            prop_assume!(current != previous);
            let h = signed(&previous, &body);
            let k = keys(&current, Some((&previous, until)), None);
            prop_assert_eq!(verify(&h, &body, &k, now).is_ok(), now < until);
        }
    }
}
