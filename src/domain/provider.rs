//! Who sends to a webhook. How each one signs is `crate::providers`' business.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Who signs a webhook's requests, and so how they are verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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
