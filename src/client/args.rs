//! `hookhub listen`'s arguments.

use std::time::Duration;

use awc::http::{header::HeaderName, Uri};

use super::forward;
use crate::crypto::{parse_secret, Secret};

#[derive(clap::Args)]
pub struct ListenArgs {
    /// Base URL of the hub.
    #[arg(long, env = "HOOKHUB_URL", default_value = "http://127.0.0.1:8080")]
    pub(super) url: String,

    /// The agent's token (hh_agent_…). Prefer the environment variable: a flag can be
    /// seen by other users of the machine.
    #[arg(long, env = "HOOKHUB_AGENT_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub(super) token: Secret,

    /// POST each delivery to this URL (your app); without it, print each delivery as a
    /// JSON line on stdout.
    #[arg(long, value_name = "URL")]
    pub(super) forward_to: Option<String>,

    /// First create a webhook with this name for the agent, and print its URL and
    /// signing secret.
    #[arg(long, value_name = "NAME")]
    pub(super) create: Option<String>,

    /// The provider of the webhook --create makes: generic (the default), github, stripe
    /// or slack.
    #[arg(long, requires = "create")]
    pub(super) provider: Option<String>,

    /// Also forward this header to the app (repeatable, or a comma-separated list).
    /// Otherwise only the provider's own headers, the content headers and the Standard
    /// Webhooks signature headers are forwarded.
    #[arg(
        long = "forward-header",
        value_name = "NAME",
        env = "HOOKHUB_FORWARD_HEADERS",
        value_parser = parse_header_names
    )]
    pub(super) forward_headers: Vec<HeaderNames>,

    /// Retry a delivery the app answers with a 4xx, as a 5xx is. By default a 4xx means
    /// the app refuses that event: it becomes `failed` in the hub at once, and the next
    /// one goes on.
    #[arg(long, conflicts_with = "no_retry")]
    pub(super) retry_4xx: bool,

    /// Retry nothing: any delivery the app does not answer with a 2xx (or cannot be
    /// reached for) becomes `failed` in the hub at once.
    #[arg(long)]
    pub(super) no_retry: bool,

    /// Longest wait between two tries of reconnecting to the hub.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub(super) max_backoff: Duration,
}

impl ListenArgs {
    /// What a failed forward does: `--retry-4xx`, `--no-retry`, or neither.
    pub(super) fn policy(&self) -> forward::Policy {
        match (self.retry_4xx, self.no_retry) {
            (true, _) => forward::Policy::RetryAll,
            (_, true) => forward::Policy::RetryNone,
            _ => forward::Policy::Default,
        }
    }
}

/// The names one `--forward-header` gives. A list rather than clap's own delimiter, so
/// that an empty entry (or an empty variable) adds nothing instead of being an error.
#[derive(Clone)]
pub(super) struct HeaderNames(pub(super) Vec<HeaderName>);

fn parse_header_names(s: &str) -> Result<HeaderNames, String> {
    forward::forward_header_names(s).map(HeaderNames)
}

/// An `http(s)://` URL without its trailing slash.
pub(super) fn base_url(url: &str, flag: &str) -> Result<String, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{flag} `{url}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(url.trim_end_matches('/').to_owned()),
        _ => Err(format!(
            "{flag} must be an http:// or https:// URL, not `{url}`"
        )),
    }
}
