//! hookhub: a self-hosted realtime webhook hub for AI agents.
//!
//! Senders POST events to a webhook's URL; hookhub commits each one durably, answers the
//! sender, and pushes it to the owning agent over the agent's WebSocket. An agent that was
//! offline gets its backlog, oldest first, when it reconnects.
//!
//! # Layout
//!
//! The path of a delivery, in order:
//!
//! 1. [`http`]: the HTTP front door, one file per resource, and [`http::auth`], the
//!    extractor that says who is calling. [`http::ingest`] checks what can be checked
//!    before a body is read; [`admission`] bounds what senders may hold while they send it
//!    (connections, bodies, memory, time); [`ratelimit`] is each webhook's rate.
//! 2. [`service`]: the rules, one place for the HTTP API, the dashboard and the agent's
//!    self-service tools ([`service::tools`]); [`service::ingest`] verifies a request with
//!    [`providers`] and hands it to the writer.
//! 3. [`pipeline`]: [`pipeline::writer`] commits deliveries in groups and answers each
//!    sender once its group is durable; [`pipeline::registry`] routes what was committed
//!    to the agent's session; [`pipeline::retention`] expires and prunes old rows.
//! 4. [`socket`]: one session actor per agent socket, which sends in queue order within
//!    its [`socket::window`], and records each ack through the writer; or [`mcp`], the
//!    same tools for LLM agents, whose `next_events` ([`service::events`]) reads the same
//!    queue, leasing what it hands out ([`pipeline::leases`]). [`signer`] signs what both
//!    hand out.
//!
//! Beside the path:
//!
//! - [`store`]: the only code that speaks SQL (SQLite, the queue of record), behind the
//!   interface the writer and the sessions use ([`store::BatchWriter`], [`store::Store`]).
//! - [`domain`]: ids, providers, deliveries and their statuses: the types every layer
//!   shares, with no I/O.
//! - [`protocol`]: every frame of the agent socket, both ways, used by the hub and by
//!   [`client`], `hookhub listen`.
//! - [`crypto`]: tokens, sealing secrets at rest, opening a webhook's keys.
//! - [`state`]: the handles one hub shares ([`state::Hub`]); [`startup`] builds it, binds
//!   the listener and runs until shutdown; [`cli`] and [`config`] are the command line
//!   and its settings.
//! - [`metrics`], [`logging`], [`webhook_cache`], [`datadir`], [`clock`], [`error`],
//!   [`shutdown`]: counters for `/metrics`, the log, active webhooks as ingest sees them,
//!   the data directory's files, time, the one error type, the stop signal.
//!
//! No module imports one that imports it back; `scripts/check-module-cycles` checks it.

// The allocator tuning and the file-limit raise in `main.rs` are the only unsafe calls,
// and they stay in the binary.
#![forbid(unsafe_code)]

pub mod admission;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod datadir;
pub mod domain;
pub mod error;
pub mod http;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod pipeline;
pub mod protocol;
pub mod providers;
pub mod ratelimit;
pub mod service;
pub mod shutdown;
pub mod signer;
pub mod socket;
pub mod startup;
pub mod state;
pub mod store;
pub mod webhook_cache;
