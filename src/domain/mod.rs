//! The types every layer shares: typed ids, names, providers, deliveries and their
//! statuses, sealed secrets. Plain data and the rules that need nothing but the data; no
//! I/O, and nothing here imports another module of the crate.

pub mod delivery;
pub mod headers;
pub mod ids;
pub mod provider;

pub use delivery::{
    out_of_attempts, AttemptEnd, AttemptOutcome, BacklogCap, BacklogSnapshot, BodyCut,
    BulkRequeueOutcome, DeliveryStatus, DiscardOutcome, FailReason, HandlerResult, IngestOutcome,
    NewDelivery, PendingDelivery, RedeliverFilter, RequeueOutcome, Via,
};
pub use provider::Provider;

/// The longest name of an account, an agent or a webhook, in characters.
pub const MAX_NAME: usize = 200;

/// A webhook's secrets as stored: sealed, to be opened with the master key.
#[derive(Clone, Debug)]
pub struct SealedSecrets {
    pub signing: Vec<u8>,
    pub previous: Option<Vec<u8>>,
    pub previous_until: Option<i64>,
    pub provider: Option<Vec<u8>>,
}
