//! Header names with a meaning of their own to every layer that handles requests.

/// Headers that describe one hop, not the event (RFC 9110 §7.6.1); they are not stored.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];
