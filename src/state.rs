//! The application state: the handles every request, session and background task of one
//! hub shares. It holds handles only; the rules that use them are in `crate::service`.

use std::sync::Arc;

use actix::Addr;
use tokio_util::sync::CancellationToken;

use crate::{
    admission::BodySlots,
    config::Config,
    crypto::MasterKey,
    metrics::Metrics,
    pipeline::{leases::Leases, writer::DeliveryWriter, Registry},
    ratelimit::RateLimiter,
    store::Store,
    webhook_cache::WebhookCache,
};

/// Everything a request or a session needs, shared by all of them.
#[derive(Clone)]
pub struct Hub {
    pub store: Store,
    pub writer: DeliveryWriter,
    pub registry: Addr<Registry>,
    /// What the pull side (`next_events`) has handed out, per agent.
    pub leases: Arc<Leases>,
    pub key: MasterKey,
    pub config: Arc<Config>,
    /// Base of every webhook `url`, without a trailing slash.
    pub public_url: Arc<str>,
    /// Cancelled when the hub starts shutting down, so that long-lived responses (the
    /// dashboard's live activity streams) end at once instead of holding up the drain.
    pub shutdown: CancellationToken,
    /// This hub's counters and histograms (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// Active webhooks as ingest sees them; invalidated by every change to one.
    pub webhooks: Arc<WebhookCache>,
    /// How many rejected requests per webhook are recorded: past this rate they are
    /// refused all the same, and only counted.
    pub rejections: Arc<RateLimiter>,
    /// Request bodies being read, per peer address.
    pub body_slots: Arc<BodySlots>,
}
