//! The delivery pipeline after ingest: the [`writer::DeliveryWriter`] commits deliveries
//! (and acks, sends, requeues) in groups, the [`registry::Registry`] routes each committed
//! delivery to its agent's session, and [`retention`] expires and prunes old rows through
//! the writer. [`leases`] is what the pull side (MCP's `next_events`) has handed out.

pub mod leases;
pub mod registry;
pub mod retention;
pub mod writer;

pub use registry::Registry;
pub use writer::DeliveryWriter;
