//! Typed, prefixed identifiers. An id of the wrong kind does not compile, and an id from
//! a URL is checked for its prefix and ULID before it reaches a query.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! prefixed_id {
    ($name:ident, $prefix:literal) => {
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, ulid::Ulid::new()))
            }

            /// Accepts only `prefix` followed by a valid ULID.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?;
                ulid::Ulid::from_string(rest).ok()?;
                Some(Self(s.to_owned()))
            }

            /// For values read back from our own database.
            pub(crate) fn from_trusted(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(AccountId, "acct_");
prefixed_id!(AgentId, "agt_");
prefixed_id!(WebhookId, "whk_");
prefixed_id!(DeliveryId, "dlv_");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_checks_prefix_and_ulid() {
        let id = WebhookId::generate();
        assert_eq!(WebhookId::parse(id.as_str()), Some(id.clone()));
        assert!(AgentId::parse(id.as_str()).is_none());
        assert!(WebhookId::parse("whk_nope").is_none());
        assert!(WebhookId::parse("").is_none());
    }
}
