//! Every integration test of the hub, in one binary: one module per area, and the harness
//! they share (`harness/`: a hub in-process or as a child process, a store opened
//! directly, and what senders sign with). One binary links the hub once, not once per
//! area.
//!
//! Run one area, or one test, with a filter on the module path:
//!
//! ```sh
//! cargo test --test it delivery::
//! cargo test --test it providers::a_duplicate_is_answered_with_the_original_id_and_not_delivered_twice
//! ```

// Helpers outside #[test] functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod api;
mod browser;
mod dashboard;
mod delivery;
mod deploy;
mod failures;
mod front_door;
mod lifecycle;
mod listen;
mod mcp;
mod metrics;
mod migrations;
mod nginx;
mod openapi;
mod operations;
mod providers;
mod retention;
mod socket;
mod tools;
mod trigger;
mod writer_batches;
