//! The one error type of the API. Client errors carry a code and a message that are safe
//! to show; everything else is logged with its cause and answered as an opaque 500.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use serde::Serialize;

pub use crate::protocol::ErrorDetail;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// A dashboard request that changes something, signed in by cookie, without the
    /// session's CSRF token: possibly forged by another site, so it is not the owner's.
    #[error("missing or invalid X-CSRF-Token header for this dashboard session")]
    CsrfRejected,
    /// A valid agent token where only an owner's will do (managing agents).
    #[error("this needs an owner token; an agent token manages only its own webhooks")]
    OwnerOnly,
    /// A valid owner token where only an agent's will do (MCP runs as one agent).
    #[error("this needs an agent token: MCP tools run as the agent whose token it is")]
    AgentOnly,
    /// A browser page of another site calling an endpoint that only its own may.
    #[error("requests from this Origin are not allowed")]
    ForbiddenOrigin,
    /// Also what a caller gets for something that exists but is not theirs.
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    InvalidRequest {
        field: Option<&'static str>,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("rate limit exceeded")]
    RateLimited { retry_after_secs: u64 },
    /// The body did not arrive within the body timeout.
    #[error("the request body did not arrive within {secs} s")]
    BodyTimeout { secs: u64 },
    /// The peer address already has as many bodies being read as it may.
    #[error("too many requests from this address are still sending their bodies")]
    TooManyInProgress,
    #[error("the agent's backlog is full")]
    BacklogFull { retry_after_secs: u64 },
    #[error("{0}")]
    InvalidSignature(String),
    /// The delivery writer has stopped, which it does only when the hub shuts down.
    #[error("the hub is shutting down")]
    Unavailable,
    /// A commit failed (a full disk, say): nothing was stored, and the same request may
    /// succeed later.
    #[error("the delivery could not be stored; retry")]
    StorageUnavailable,
    /// The cause is kept for the log; the client never sees it.
    #[error("internal error: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            field: Some(field),
            message: message.into(),
        }
    }

    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(e.into())
    }

    /// A full backlog drains only as its agent acks, so asking again at once is no use.
    pub fn backlog_full() -> Self {
        Self::BacklogFull {
            retry_after_secs: 30,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized | Self::CsrfRejected | Self::OwnerOnly | Self::AgentOnly => {
                "unauthorized"
            }
            Self::ForbiddenOrigin => "forbidden_origin",
            Self::NotFound => "not_found",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::RateLimited { .. } | Self::TooManyInProgress => "rate_limited",
            Self::BodyTimeout { .. } => "request_timeout",
            Self::BacklogFull { .. } => "backlog_full",
            Self::InvalidSignature(_) => "invalid_signature",
            Self::Unavailable => "unavailable",
            Self::StorageUnavailable => "storage_unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The message a client may see. Never the cause of an internal error.
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }

    pub fn body(&self) -> ErrorBody {
        let field = match self {
            Self::InvalidRequest { field, .. } => *field,
            _ => None,
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.public_message(),
                field,
            },
        }
    }
}

/// The body of every error answer of the API.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized
            | Self::CsrfRejected
            | Self::OwnerOnly
            | Self::AgentOnly
            | Self::InvalidSignature(_) => StatusCode::UNAUTHORIZED,
            Self::ForbiddenOrigin => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } | Self::TooManyInProgress => StatusCode::TOO_MANY_REQUESTS,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::BacklogFull { .. } | Self::Unavailable | Self::StorageUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(cause) = self {
            tracing::error!(error = %cause, "internal error");
        }
        let mut resp = HttpResponse::build(self.status_code());
        match self {
            Self::RateLimited { retry_after_secs } | Self::BacklogFull { retry_after_secs } => {
                resp.insert_header(("Retry-After", retry_after_secs.to_string()));
            }
            // An owner token where an agent's is needed is a bearer token refused all the
            // same: clients (the MCP SDKs) look for the challenge to tell why.
            Self::Unauthorized | Self::AgentOnly => {
                resp.insert_header(("WWW-Authenticate", "Bearer"));
            }
            Self::Unavailable => {
                resp.insert_header(("Retry-After", "1"));
            }
            // Room on a full disk is made by someone, not by waiting a second.
            Self::StorageUnavailable => {
                resp.insert_header(("Retry-After", "30"));
            }
            // Both leave a request half read: the connection cannot carry another, and
            // closing it gives its descriptor back.
            Self::BodyTimeout { .. } => {
                resp.force_close();
            }
            Self::TooManyInProgress => {
                resp.insert_header(("Retry-After", "1"));
                resp.force_close();
            }
            _ => {}
        }
        resp.json(self.body())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::internal(e)
    }
}

impl From<crate::pipeline::writer::WriteError> for ApiError {
    fn from(e: crate::pipeline::writer::WriteError) -> Self {
        match e {
            crate::pipeline::writer::WriteError::Stopped => Self::Unavailable,
            crate::pipeline::writer::WriteError::Failed(_) => Self::StorageUnavailable,
        }
    }
}

impl From<crate::crypto::CryptoError> for ApiError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        Self::internal(e)
    }
}
