//! Sample events, shaped and signed as each provider sends them: what `hookhub trigger`
//! posts to a webhook's URL, and what the dashboard's "Send test event" runs through
//! ingest. One module for both, so that the command line and the hub cannot come to sign
//! differently, and a sample checked here is the one either sends.
//!
//! Each sample carries a fresh provider delivery id (`X-GitHub-Delivery`, Stripe's event
//! `id`, Slack's `event_id`, `webhook-id`), so that a second one is a new delivery and not
//! a duplicate of the first. Signing follows the verifiers beside this file, and the
//! unit tests below check each sample against an independent recipe, not against them:
//!
//! - `github`: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>`, keyed with the
//!   webhook's signing secret as text. (GitHub also sends the SHA-1 `X-Hub-Signature`,
//!   which nothing verifies any more; it is left out.)
//! - `stripe`: `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256("t.body")>`, keyed with the
//!   secret Stripe issued.
//! - `slack`: `X-Slack-Signature: v0=<hex HMAC-SHA256("v0:ts:body")>` and
//!   `X-Slack-Request-Timestamp`, keyed with the Slack app's signing secret.
//! - `generic`: Standard Webhooks, made by [`crate::signer`], which signs what the hub
//!   hands to agents the same way.
//!
//! Stripe and Slack samples may go unsigned: a webhook whose provider secret is not set
//! yet takes them as `verified: false`, as it takes the provider's own requests. GitHub
//! and generic ones are always signed; a sample of theirs without a secret is an error.
//!
//! Only building, never sending: no I/O, and the time comes from the caller.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{generic, github, hmac_sha256, slack, stripe};
use crate::{
    clock,
    crypto::{Keys, Secret},
    domain::Provider,
    signer,
};

/// The longest event type a sample takes.
pub const MAX_EVENT: usize = 100;

/// A request as the provider would send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The event type it carries.
    pub event: String,
    /// Its headers, named as the provider spells them, signature headers included.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Whether a signature header was made (Stripe's and Slack's may be left unsigned).
    pub signed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    #[error(
        "a {0} event is signed with the webhook's signing secret (whsec_…), and none was given"
    )]
    NoSecret(Provider),
    #[error("the signing secret is not a Standard Webhooks secret (whsec_ and base64)")]
    NotStandardWebhooksSecret,
    #[error("the event type must be 1 to {MAX_EVENT} letters, digits and . _ : - (such as {0})")]
    InvalidEvent(&'static str),
    /// HMAC takes a key of any length, so this is not expected; it is an error all the
    /// same, rather than a request sent with a signature that cannot be right.
    #[error("the HMAC of the sample could not be made")]
    Signing,
}

/// The event a sample of `provider` carries unless told otherwise.
pub fn default_event(provider: Provider) -> &'static str {
    match provider {
        Provider::Github => "push",
        Provider::Stripe => "payment_intent.succeeded",
        Provider::Slack => "app_mention",
        Provider::Generic => "test.event",
    }
}

/// Which of a webhook's secrets its provider signs with: the signing secret for GitHub
/// and generic senders, the secret the provider issued for Stripe and Slack (`None` until
/// the owner sets it).
pub fn signing_secret(provider: Provider, keys: &Keys) -> Option<&Secret> {
    if provider.uses_provider_secret() {
        keys.provider.as_ref()
    } else {
        Some(&keys.signing)
    }
}

/// A sample of `event` (or the provider's default) from `provider`, signed with `secret`,
/// at `now_ms`.
pub fn build(
    provider: Provider,
    event: Option<&str>,
    secret: Option<&str>,
    now_ms: i64,
) -> Result<Sample, SampleError> {
    let event = match event {
        None => default_event(provider),
        Some(e) if is_event_type(e) => e,
        Some(_) => return Err(SampleError::InvalidEvent(default_event(provider))),
    };
    let now = now_ms.div_euclid(1000);
    let sample = match provider {
        Provider::Github => {
            let secret = secret.ok_or(SampleError::NoSecret(provider))?;
            github_sample(event, secret, now_ms)?
        }
        Provider::Stripe => stripe_sample(event, secret, now)?,
        Provider::Slack => slack_sample(event, secret, now)?,
        Provider::Generic => {
            let secret = secret.ok_or(SampleError::NoSecret(provider))?;
            generic_sample(event, secret, now_ms)?
        }
    };
    Ok(sample)
}

/// An event type fit for a header and a JSON field: GitHub's, Stripe's, Slack's and
/// Standard Webhooks' all are.
fn is_event_type(s: &str) -> bool {
    (1..=MAX_EVENT).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A fresh id: 26 characters of a ULID, unique enough for a dedupe key.
fn fresh() -> String {
    ulid::Ulid::new().to_string()
}

/// `n` hex digits that look like a git object id, fresh each time.
fn fresh_hex(n: usize) -> String {
    let mut digits = hex::encode(Sha256::digest(fresh()));
    digits.truncate(n);
    digits
}

/// A GUID as GitHub writes its delivery ids.
fn fresh_guid() -> String {
    let h = fresh_hex(32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn json_body(value: &Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// Hex HMAC-SHA256 of the concatenated parts.
fn hmac_hex(key: &str, parts: &[&[u8]]) -> Result<String, SampleError> {
    hmac_sha256(key.as_bytes(), parts)
        .map(hex::encode)
        .ok_or(SampleError::Signing)
}

// ---- GitHub --------------------------------------------------------------------------

const GITHUB_REPO_ID: u64 = 1_296_269;
const GITHUB_HOOK_ID: u64 = 481_516_234;

fn github_sample(event: &str, secret: &str, now_ms: i64) -> Result<Sample, SampleError> {
    let body = json_body(&github_body(event, now_ms));
    let signature = format!("sha256={}", hmac_hex(secret, &[&body])?);
    Ok(Sample {
        event: event.to_owned(),
        headers: vec![
            ("Content-Type", "application/json".to_owned()),
            ("User-Agent", format!("GitHub-Hookshot/{}", fresh_hex(7))),
            (github::DELIVERY_HEADER, fresh_guid()),
            (github::EVENT_HEADER, event.to_owned()),
            ("X-GitHub-Hook-ID", GITHUB_HOOK_ID.to_string()),
            (
                "X-GitHub-Hook-Installation-Target-ID",
                GITHUB_REPO_ID.to_string(),
            ),
            (
                "X-GitHub-Hook-Installation-Target-Type",
                "repository".to_owned(),
            ),
            (github::SIGNATURE_HEADER, signature),
        ],
        body,
        signed: true,
    })
}

fn github_body(event: &str, now_ms: i64) -> Value {
    let at = clock::rfc3339(now_ms);
    let repo_url = "https://github.com/octo-org/hello-world";
    let repository = json!({
        "id": GITHUB_REPO_ID,
        "name": "hello-world",
        "full_name": "octo-org/hello-world",
        "private": false,
        "owner": {"login": "octo-org", "id": 6_811_672, "type": "Organization"},
        "html_url": repo_url,
        "default_branch": "main",
    });
    let sender = json!({
        "login": "octocat",
        "id": 583_231,
        "type": "User",
        "html_url": "https://github.com/octocat",
    });
    let issue = json!({
        "id": 1_001_347,
        "number": 1347,
        "title": "Found a bug",
        "body": "A test issue, sent with hookhub.",
        "state": "open",
        "user": sender,
        "labels": [],
        "html_url": format!("{repo_url}/issues/1347"),
        "created_at": at,
        "updated_at": at,
    });
    match event {
        "push" => {
            let (before, after) = (fresh_hex(40), fresh_hex(40));
            let commit = json!({
                "id": after,
                "tree_id": fresh_hex(40),
                "distinct": true,
                "message": "A test push, sent with hookhub",
                "timestamp": at,
                "url": format!("{repo_url}/commit/{after}"),
                "author": {"name": "The Octocat", "email": "octocat@github.com", "username": "octocat"},
                "committer": {"name": "The Octocat", "email": "octocat@github.com", "username": "octocat"},
                "added": [],
                "removed": [],
                "modified": ["README.md"],
            });
            json!({
                "ref": "refs/heads/main",
                "before": before,
                "after": after,
                "created": false,
                "deleted": false,
                "forced": false,
                "compare": format!("{repo_url}/compare/{}...{}", &before[..12], &after[..12]),
                "commits": [commit],
                "head_commit": commit,
                "repository": repository,
                "pusher": {"name": "octocat", "email": "octocat@github.com"},
                "sender": sender,
            })
        }
        "ping" => json!({
            "zen": "Keep it logically awesome.",
            "hook_id": GITHUB_HOOK_ID,
            "hook": {
                "type": "Repository",
                "id": GITHUB_HOOK_ID,
                "name": "web",
                "active": true,
                "events": ["*"],
                "config": {"content_type": "json", "insecure_ssl": "0"},
                "created_at": at,
                "updated_at": at,
            },
            "repository": repository,
            "sender": sender,
        }),
        "issues" => json!({
            "action": "opened",
            "issue": issue,
            "repository": repository,
            "sender": sender,
        }),
        "issue_comment" => json!({
            "action": "created",
            "issue": issue,
            "comment": {
                "id": 2_001_347,
                "body": "A test comment, sent with hookhub.",
                "user": sender,
                "html_url": format!("{repo_url}/issues/1347#issuecomment-2001347"),
                "created_at": at,
            },
            "repository": repository,
            "sender": sender,
        }),
        "pull_request" => json!({
            "action": "opened",
            "number": 1348,
            "pull_request": {
                "id": 1_001_348,
                "number": 1348,
                "title": "Update the README",
                "body": "A test pull request, sent with hookhub.",
                "state": "open",
                "draft": false,
                "merged": false,
                "user": sender,
                "html_url": format!("{repo_url}/pull/1348"),
                "head": {"ref": "update-readme", "sha": fresh_hex(40)},
                "base": {"ref": "main", "sha": fresh_hex(40)},
                "created_at": at,
                "updated_at": at,
            },
            "repository": repository,
            "sender": sender,
        }),
        // Every GitHub event names its repository and who caused it.
        _ => json!({"repository": repository, "sender": sender}),
    }
}

// ---- Stripe --------------------------------------------------------------------------

fn stripe_sample(event: &str, secret: Option<&str>, now: i64) -> Result<Sample, SampleError> {
    let value = stripe_body(event, now);
    // Stripe sends its events pretty-printed; a `Value` always prints, one way or the other.
    let body = serde_json::to_vec_pretty(&value).unwrap_or_else(|_| json_body(&value));
    let mut headers = vec![
        ("Content-Type", "application/json; charset=utf-8".to_owned()),
        (
            "User-Agent",
            "Stripe/1.0 (+https://stripe.com/docs/webhooks)".to_owned(),
        ),
    ];
    if let Some(secret) = secret {
        let t = now.to_string();
        let v1 = hmac_hex(secret, &[t.as_bytes(), b".", &body])?;
        headers.push((stripe::SIGNATURE_HEADER, format!("t={t},v1={v1}")));
    }
    Ok(Sample {
        event: event.to_owned(),
        headers,
        body,
        signed: secret.is_some(),
    })
}

fn stripe_body(event: &str, now: i64) -> Value {
    json!({
        "id": format!("evt_{}", fresh()),
        "object": "event",
        "api_version": "2024-06-20",
        "created": now,
        "data": {"object": stripe_object(event, now)},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": format!("req_{}", fresh()), "idempotency_key": fresh_guid()},
        "type": event,
    })
}

/// The object an event of this type is about, as Stripe names it: the type without its
/// last segment (`checkout.session.completed` is about a `checkout.session`).
fn stripe_object(event: &str, now: i64) -> Value {
    let (kind, what) = event.rsplit_once('.').unwrap_or((event, ""));
    let customer = "cus_NffrFeUfNV2Hib";
    let failed = what.contains("failed");
    match kind {
        "payment_intent" => json!({
            "id": format!("pi_{}", fresh()),
            "object": "payment_intent",
            "amount": 2000,
            "amount_received": if what == "succeeded" { 2000 } else { 0 },
            "currency": "usd",
            "customer": customer,
            "description": "A test payment, sent with hookhub",
            "status": match what {
                "succeeded" => "succeeded",
                "processing" => "processing",
                "canceled" => "canceled",
                "amount_capturable_updated" => "requires_capture",
                _ => "requires_payment_method",
            },
            "created": now,
            "livemode": false,
            "metadata": {},
        }),
        "charge" => json!({
            "id": format!("ch_{}", fresh()),
            "object": "charge",
            "amount": 2000,
            "currency": "usd",
            "customer": customer,
            "paid": !failed,
            "status": if failed { "failed" } else { "succeeded" },
            "payment_intent": format!("pi_{}", fresh()),
            "created": now,
            "livemode": false,
        }),
        "customer" => json!({
            "id": customer,
            "object": "customer",
            "name": "Jenny Rosen",
            "email": "jenny.rosen@example.com",
            "created": now,
            "livemode": false,
        }),
        "customer.subscription" => json!({
            "id": format!("sub_{}", fresh()),
            "object": "subscription",
            "customer": customer,
            "status": if what == "deleted" { "canceled" } else { "active" },
            "created": now,
            "livemode": false,
        }),
        "checkout.session" => json!({
            "id": format!("cs_test_{}", fresh()),
            "object": "checkout.session",
            "mode": "payment",
            "amount_total": 2000,
            "currency": "usd",
            "customer": customer,
            "status": if what == "expired" { "expired" } else { "complete" },
            "payment_status": if what == "completed" { "paid" } else { "unpaid" },
            "created": now,
            "livemode": false,
        }),
        "invoice" => json!({
            "id": format!("in_{}", fresh()),
            "object": "invoice",
            "amount_due": 2000,
            "amount_paid": if what == "paid" { 2000 } else { 0 },
            "currency": "usd",
            "customer": customer,
            "status": if what == "paid" { "paid" } else { "open" },
            "created": now,
            "livemode": false,
        }),
        other => json!({
            "id": format!("obj_{}", fresh()),
            "object": other,
            "created": now,
            "livemode": false,
        }),
    }
}

// ---- Slack ---------------------------------------------------------------------------

const SLACK_TEAM: &str = "T0001HOOKH";
const SLACK_BOT: &str = "U0001BOTHH";
const SLACK_USER: &str = "U061F7AUR";
const SLACK_CHANNEL: &str = "C0LAN2Q65";
/// Slack's deprecated verification token: still in every callback, never a secret.
const SLACK_TOKEN: &str = "Jhj5dZrVaK7ZwHHjRyZWjbDl";

fn slack_sample(event: &str, secret: Option<&str>, now: i64) -> Result<Sample, SampleError> {
    let body = json_body(&slack_body(event, now));
    let timestamp = now.to_string();
    let mut headers = vec![
        ("Content-Type", "application/json".to_owned()),
        (
            "User-Agent",
            "Slackbot 1.0 (+https://api.slack.com/robots)".to_owned(),
        ),
        (slack::TIMESTAMP_HEADER, timestamp.clone()),
    ];
    if let Some(secret) = secret {
        let v0 = hmac_hex(secret, &[b"v0:", timestamp.as_bytes(), b":", &body])?;
        headers.push((slack::SIGNATURE_HEADER, format!("v0={v0}")));
    }
    Ok(Sample {
        event: event.to_owned(),
        headers,
        body,
        signed: secret.is_some(),
    })
}

fn slack_body(event: &str, now: i64) -> Value {
    if event == "url_verification" {
        // Slack checking a Request URL: the hub answers the challenge, and queues nothing.
        return json!({
            "token": SLACK_TOKEN,
            "challenge": fresh(),
            "type": "url_verification",
        });
    }
    let ts = format!("{now}.000100");
    let inner = match event {
        "app_mention" => json!({
            "type": "app_mention",
            "user": SLACK_USER,
            "text": format!("<@{SLACK_BOT}> a test mention, sent with hookhub"),
            "ts": ts,
            "channel": SLACK_CHANNEL,
            "event_ts": ts,
        }),
        "message" => json!({
            "type": "message",
            "channel": SLACK_CHANNEL,
            "channel_type": "channel",
            "user": SLACK_USER,
            "text": "A test message, sent with hookhub",
            "ts": ts,
            "event_ts": ts,
        }),
        "reaction_added" => json!({
            "type": "reaction_added",
            "user": SLACK_USER,
            "reaction": "thumbsup",
            "item": {"type": "message", "channel": SLACK_CHANNEL, "ts": ts},
            "event_ts": ts,
        }),
        other => json!({"type": other, "user": SLACK_USER, "event_ts": ts}),
    };
    // Slack's event ids are `Ev` and ten characters.
    let id = fresh();
    json!({
        "token": SLACK_TOKEN,
        "team_id": SLACK_TEAM,
        "api_app_id": "A0001HOOKH",
        "event": inner,
        "type": "event_callback",
        "event_id": format!("Ev{}", &id[id.len() - 10..]),
        "event_time": now,
        "authorizations": [{
            "team_id": SLACK_TEAM,
            "user_id": SLACK_BOT,
            "is_bot": true,
            "is_enterprise_install": false,
        }],
        "is_ext_shared_channel": false,
    })
}

// ---- Generic (Standard Webhooks) -----------------------------------------------------

fn generic_sample(event: &str, secret: &str, now_ms: i64) -> Result<Sample, SampleError> {
    let body = json_body(&json!({
        "type": event,
        "timestamp": clock::rfc3339(now_ms),
        "data": {"message": "A test event, sent with hookhub"},
    }));
    let id = format!("msg_{}", fresh());
    let timestamp = now_ms.div_euclid(1000);
    let signature = signer::standard_webhooks_signature(secret, &id, timestamp, &body)
        .ok_or(SampleError::NotStandardWebhooksSecret)?;
    Ok(Sample {
        event: event.to_owned(),
        headers: vec![
            ("Content-Type", "application/json".to_owned()),
            (
                "User-Agent",
                concat!("hookhub/", env!("CARGO_PKG_VERSION")).to_owned(),
            ),
            (generic::ID_HEADER, id),
            (generic::TIMESTAMP_HEADER, timestamp.to_string()),
            (generic::SIGNATURE_HEADER, signature),
        ],
        body,
        signed: true,
    })
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderMap;

    use super::*;
    use crate::providers::{
        test_support::{arb::mac, headers, keys},
        Verdict,
    };

    const NOW: i64 = 1_782_907_200_123;
    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const STRIPE_SECRET: &str = "whsec_stripe_endpoint_secret";
    const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

    fn header<'a>(s: &'a Sample, name: &str) -> Option<&'a str> {
        s.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn header_map(s: &Sample) -> HeaderMap {
        let pairs: Vec<(&str, &[u8])> = s.headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        headers(&pairs)
    }

    fn body(s: &Sample) -> Value {
        serde_json::from_slice(&s.body).unwrap()
    }

    #[test]
    fn a_github_sample_is_signed_by_githubs_recipe_and_names_its_event() {
        let s = build(Provider::Github, None, Some(WHSEC), NOW).unwrap();
        assert_eq!(s.event, "push");
        let expected = format!("sha256={}", hex::encode(mac(WHSEC.as_bytes(), &[&s.body])));
        assert_eq!(header(&s, "x-hub-signature-256"), Some(expected.as_str()));
        assert_eq!(header(&s, "x-github-event"), Some("push"));
        assert!(header(&s, "user-agent")
            .unwrap()
            .starts_with("GitHub-Hookshot/"));
        assert_eq!(body(&s)["ref"], "refs/heads/main");
        assert_eq!(body(&s)["commits"][0]["id"], body(&s)["after"]);
        let i = Provider::Github.inspect(&header_map(&s), &s.body, &keys(WHSEC, None, None), NOW);
        assert_eq!(i.verdict, Verdict::Verified);
        assert_eq!(i.event.as_deref(), Some("push"));

        let issue = build(Provider::Github, Some("issues"), Some(WHSEC), NOW).unwrap();
        assert_eq!(header(&issue, "x-github-event"), Some("issues"));
        assert_eq!(body(&issue)["action"], "opened");
        assert_eq!(body(&issue)["issue"]["number"], 1347);
        let ping = build(Provider::Github, Some("ping"), Some(WHSEC), NOW).unwrap();
        assert_eq!(body(&ping)["hook_id"], GITHUB_HOOK_ID);
    }

    #[test]
    fn a_stripe_sample_is_signed_by_stripes_recipe_and_its_object_fits_its_type() {
        let s = build(Provider::Stripe, None, Some(STRIPE_SECRET), NOW).unwrap();
        let t = (NOW / 1000).to_string();
        let v1 = hex::encode(mac(
            STRIPE_SECRET.as_bytes(),
            &[format!("{t}.").as_bytes(), &s.body],
        ));
        assert_eq!(
            header(&s, "stripe-signature"),
            Some(format!("t={t},v1={v1}").as_str())
        );
        let b = body(&s);
        assert_eq!(
            (&b["object"], &b["type"]),
            (&json!("event"), &json!("payment_intent.succeeded"))
        );
        assert!(b["id"].as_str().unwrap().starts_with("evt_"), "{b}");
        assert_eq!(b["data"]["object"]["object"], "payment_intent");
        assert_eq!(b["data"]["object"]["status"], "succeeded");
        let i = Provider::Stripe.inspect(
            &header_map(&s),
            &s.body,
            &keys(WHSEC, None, Some(STRIPE_SECRET)),
            NOW,
        );
        assert_eq!(i.verdict, Verdict::Verified);
        assert_eq!(i.provider_delivery_id.as_deref(), b["id"].as_str());

        let checkout = build(
            Provider::Stripe,
            Some("checkout.session.completed"),
            Some(STRIPE_SECRET),
            NOW,
        )
        .unwrap();
        assert_eq!(
            body(&checkout)["data"]["object"]["object"],
            "checkout.session"
        );
        let failed = build(Provider::Stripe, Some("charge.failed"), None, NOW).unwrap();
        assert_eq!(body(&failed)["data"]["object"]["status"], "failed");
    }

    #[test]
    fn a_slack_sample_is_signed_by_slacks_recipe_and_carries_its_inner_event() {
        let s = build(Provider::Slack, None, Some(SLACK_SECRET), NOW).unwrap();
        let ts = (NOW / 1000).to_string();
        assert_eq!(header(&s, "x-slack-request-timestamp"), Some(ts.as_str()));
        let v0 = hex::encode(mac(
            SLACK_SECRET.as_bytes(),
            &[format!("v0:{ts}:").as_bytes(), &s.body],
        ));
        assert_eq!(
            header(&s, "x-slack-signature"),
            Some(format!("v0={v0}").as_str())
        );
        let b = body(&s);
        assert_eq!(b["type"], "event_callback");
        assert_eq!(b["event"]["type"], "app_mention");
        let event_id = b["event_id"].as_str().unwrap();
        assert!(
            event_id.starts_with("Ev") && event_id.len() == 12,
            "{event_id}"
        );
        let i = Provider::Slack.inspect(
            &header_map(&s),
            &s.body,
            &keys(WHSEC, None, Some(SLACK_SECRET)),
            NOW,
        );
        assert_eq!(i.verdict, Verdict::Verified);
        assert_eq!(i.event.as_deref(), Some("app_mention"));

        let check = build(
            Provider::Slack,
            Some("url_verification"),
            Some(SLACK_SECRET),
            NOW,
        )
        .unwrap();
        let i = Provider::Slack.inspect(
            &header_map(&check),
            &check.body,
            &keys(WHSEC, None, Some(SLACK_SECRET)),
            NOW,
        );
        assert_eq!(i.challenge.as_deref(), body(&check)["challenge"].as_str());
        assert!(i.challenge.is_some());
    }

    #[test]
    fn a_generic_sample_is_signed_as_the_reference_library_signs() {
        let reference = standardwebhooks::Webhook::new(WHSEC).unwrap();
        let s = build(Provider::Generic, Some("invoice.paid"), Some(WHSEC), NOW).unwrap();
        assert_eq!(body(&s)["type"], "invoice.paid");
        let id = header(&s, "webhook-id").unwrap();
        assert!(id.starts_with("msg_"), "{id}");
        assert_eq!(header(&s, "webhook-timestamp"), Some("1782907200"));
        let expected = reference.sign(id, NOW / 1000, &s.body).unwrap();
        assert_eq!(header(&s, "webhook-signature"), Some(expected.as_str()));
        // And the reference verifies one made now (it checks the time with its own clock).
        let now = build(Provider::Generic, None, Some(WHSEC), clock::now_ms()).unwrap();
        let mut h = http::HeaderMap::new();
        for (name, value) in &now.headers {
            h.insert(*name, value.parse().unwrap());
        }
        assert!(reference.verify(&now.body, &h).is_ok());
        assert_eq!(body(&now)["type"], "test.event");
    }

    #[test]
    fn stripe_and_slack_samples_go_unsigned_without_a_secret_and_the_others_refuse() {
        for provider in [Provider::Stripe, Provider::Slack] {
            let s = build(provider, None, None, NOW).unwrap();
            assert!(!s.signed);
            let i = provider.inspect(&header_map(&s), &s.body, &keys(WHSEC, None, None), NOW);
            assert_eq!(i.verdict, Verdict::Unverifiable, "{provider}");
            // With the provider's secret set, the unsigned sample is refused.
            let i = provider.inspect(
                &header_map(&s),
                &s.body,
                &keys(WHSEC, None, Some("issued")),
                NOW,
            );
            assert!(matches!(i.verdict, Verdict::Rejected(_)), "{provider}");
        }
        for provider in [Provider::Github, Provider::Generic] {
            assert_eq!(
                build(provider, None, None, NOW),
                Err(SampleError::NoSecret(provider))
            );
        }
        assert_eq!(
            build(Provider::Generic, None, Some("whsec_not base64!"), NOW),
            Err(SampleError::NotStandardWebhooksSecret)
        );
    }

    #[test]
    fn each_sample_is_a_new_delivery_to_the_hub() {
        let dedupe_key = |provider: Provider, secret: &str| {
            let s = build(provider, None, Some(secret), NOW).unwrap();
            let k = keys(WHSEC, None, Some(secret));
            provider
                .inspect(&header_map(&s), &s.body, &k, NOW)
                .provider_delivery_id
                .unwrap()
        };
        for (provider, secret) in [
            (Provider::Github, WHSEC),
            (Provider::Stripe, STRIPE_SECRET),
            (Provider::Slack, SLACK_SECRET),
            (Provider::Generic, WHSEC),
        ] {
            assert_ne!(
                dedupe_key(provider, secret),
                dedupe_key(provider, secret),
                "{provider}"
            );
        }
    }

    #[test]
    fn an_event_type_that_is_not_a_plain_name_is_refused() {
        for bad in [
            "",
            "two words",
            "new\nline",
            "ü",
            &"a".repeat(MAX_EVENT + 1),
        ] {
            assert_eq!(
                build(Provider::Github, Some(bad), Some(WHSEC), NOW),
                Err(SampleError::InvalidEvent("push")),
                "{bad:?}"
            );
        }
        assert!(build(Provider::Slack, Some("team_join"), None, NOW).is_ok());
        assert!(build(
            Provider::Stripe,
            Some("customer.subscription.deleted"),
            None,
            NOW
        )
        .is_ok());
    }

    #[test]
    fn the_secret_a_provider_signs_with_is_the_one_it_uses() {
        let k = keys(WHSEC, None, Some(STRIPE_SECRET));
        assert_eq!(
            signing_secret(Provider::Github, &k).map(Secret::expose),
            Some(WHSEC)
        );
        assert_eq!(
            signing_secret(Provider::Generic, &k).map(Secret::expose),
            Some(WHSEC)
        );
        assert_eq!(
            signing_secret(Provider::Stripe, &k).map(Secret::expose),
            Some(STRIPE_SECRET)
        );
        let unset = keys(WHSEC, None, None);
        assert!(signing_secret(Provider::Slack, &unset).is_none());
    }
}
