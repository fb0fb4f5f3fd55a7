//! `hookhub trigger`: posts one sample event to a webhook's URL, shaped and signed as its
//! provider would send it ([`crate::providers::samples`]), and prints the answer. For
//! checking a webhook end to end without the provider, or without signing by hand.
//!
//! The secret is never printed. What goes to stdout is the answer alone, `STATUS BODY`,
//! so that a script can read it; a note on an unsigned send goes to stderr.

use awc::http::StatusCode;
use clap::builder::{PossibleValuesParser, TypedValueParser};

use super::{api, args::base_url};
use crate::{
    clock,
    crypto::{parse_secret, Secret},
    domain::Provider,
    providers::samples,
};

#[derive(clap::Args)]
pub struct TriggerArgs {
    /// The webhook's URL, as its create answer and the dashboard give it
    /// (`…/v1/hooks/whk_…`).
    #[arg(value_name = "WEBHOOK_URL")]
    url: String,

    /// Who the event is from: how it is shaped, and how it is signed.
    #[arg(long, value_parser = provider_parser())]
    provider: Provider,

    /// The event type: for github, push (the default), ping, issues, issue_comment,
    /// pull_request…; stripe, payment_intent.succeeded (the default), charge.failed,
    /// checkout.session.completed…; slack, app_mention (the default), message,
    /// reaction_added, url_verification…; generic, test.event (the default) or any name.
    #[arg(long, value_name = "TYPE")]
    event: Option<String>,

    /// What to sign with. github and generic: the webhook's signing secret (whsec_…).
    /// stripe and slack: the secret Stripe or Slack issued, as set on the webhook as its
    /// provider secret; without one, the event goes unsigned. Prefer the environment
    /// variable: a flag can be seen by other users of the machine.
    #[arg(long, env = "HOOKHUB_WEBHOOK_SECRET", hide_env_values = true, value_parser = parse_secret)]
    secret: Option<Secret>,
}

fn provider_parser() -> impl TypedValueParser<Value = Provider> {
    PossibleValuesParser::new(Provider::ALL.map(Provider::as_str))
        .try_map(|name| Provider::parse(&name).ok_or_else(|| format!("no provider `{name}`")))
}

pub async fn run(args: TriggerArgs) -> Result<(), String> {
    let url = base_url(&args.url, "WEBHOOK_URL")?;
    // An empty variable is no secret, not an empty key.
    let secret = args.secret.as_ref().filter(|s| !s.expose().is_empty());
    let provider = args.provider;
    if secret.is_none() {
        if !provider.uses_provider_secret() {
            return Err(format!(
                "a {provider} event is signed with the webhook's signing secret (whsec_…, shown when the webhook was made, or rotated to a new one): give it with --secret or HOOKHUB_WEBHOOK_SECRET"
            ));
        }
        eprintln!(
            "hookhub: no --secret: sending the {provider} event unsigned. A webhook without a provider secret takes it as verified: false; one with a provider secret set refuses it (401)."
        );
    }
    let sample = samples::build(
        provider,
        args.event.as_deref(),
        secret.map(Secret::expose),
        clock::now_ms(),
    )
    .map_err(|e| e.to_string())?;

    let client = api::http_client()?;
    let mut request = client.post(&url);
    for (name, value) in &sample.headers {
        request = request.insert_header((*name, value.as_str()));
    }
    let mut response = request
        .send_body(sample.body)
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = response.status();
    let answer = response
        .body()
        .await
        .map_err(|e| format!("reading the answer from {url}: {e}"))?;
    let answer = String::from_utf8_lossy(&answer);
    if status.is_success() {
        println!("{} {}", status.as_u16(), answer.trim_end());
        Ok(())
    } else {
        Err(refusal(status, &answer))
    }
}

/// What a non-2xx answer says: the hub's error code and message, or the start of
/// whatever else answered.
fn refusal(status: StatusCode, answer: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(answer).ok();
    let error = parsed.as_ref().map(|v| &v["error"]);
    match (
        error.and_then(|e| e["code"].as_str()),
        error.and_then(|e| e["message"].as_str()),
    ) {
        (Some(code), Some(message)) => {
            format!("the hub answered {} {code}: {message}", status.as_u16())
        }
        _ => {
            let start: String = answer.trim().chars().take(300).collect();
            format!("the receiver answered {status}: {start}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_hubs_code_and_message() {
        let hub = r#"{"error":{"code":"invalid_signature","message":"X-Hub-Signature-256 does not match"}}"#;
        assert_eq!(
            refusal(StatusCode::UNAUTHORIZED, hub),
            "the hub answered 401 invalid_signature: X-Hub-Signature-256 does not match"
        );
        assert_eq!(
            refusal(StatusCode::BAD_GATEWAY, "  <html>bad gateway</html>\n"),
            "the receiver answered 502 Bad Gateway: <html>bad gateway</html>"
        );
    }
}
