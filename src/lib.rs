//! hookhub: a self-hosted realtime webhook hub for AI agents.
//!
//! Senders POST events to a webhook's URL; hookhub commits each one durably, answers the
//! sender, and pushes it to the owning agent over the agent's WebSocket. An agent that was
//! offline gets its backlog, oldest first, when it reconnects.
//!
//! # Layout
//!
//! - [`cli`]: the command line (`serve`, `account create`, `agent create`, `listen`).
//! - [`config`]: settings, every one a flag and a `HOOKHUB_*` environment variable.
//! - [`startup`]: builds the application, binds the listener, runs until shutdown.
//! - [`routes`]: HTTP handlers, one file per resource; thin, they call [`service`].
//!   [`routes::dashboard`] serves the web dashboard, embedded from `src/dashboard/`.
//! - [`service`]: the rules (ownership, validation, `createdBy`), one place for both the
//!   HTTP API and the agent's self-service tools.
//! - [`auth`]: who is calling: an owner or an agent, from a bearer token, or an owner
//!   from a dashboard session cookie (with its CSRF check).
//! - [`store`]: the only code that speaks SQL; SQLite is the queue of record.
//! - [`writer`]: the delivery writer, sole inserter into the queue, committing in groups,
//!   and the checkpointer that copies its WAL into the database file beside it.
//! - [`actors`]: the `Registry` of online agents and one `AgentSession` per socket.
//! - [`protocol`]: the JSON frames spoken on the agent socket.
//! - [`providers`]: one module per provider's signature scheme and event names.
//! - [`admission`]: the bounds that keep senders from holding connections, descriptors
//!   and memory: the body deadline, bodies and connections per address, bodies in
//!   progress for all, connections within the file limit.
//! - [`ratelimit`]: the per-webhook token buckets ingest checks before reading a body.
//! - [`webhook_cache`]: active webhooks as ingest sees them, invalidated by every change.
//! - [`listen`]: `hookhub listen`, a client of a running hub that forwards an agent's
//!   deliveries to a local app or prints them, acking each once it is handed over.
//! - [`metrics`]: the counters and histograms served on `/metrics`.
//! - [`logging`]: the log on stderr, which sums up malformed requests instead of an error
//!   line each.
//! - [`crypto`]: tokens, their hashes, and signing secrets sealed at rest.
//! - [`datadir`]: the data directory and its files, private to the user the hub runs as.
//! - [`ids`], [`clock`], [`error`]: typed prefixed ids, timestamps, the one error type.

// The allocator tuning and the file-limit raise in `main.rs` are the only unsafe calls,
// and they stay in the binary.
#![forbid(unsafe_code)]

pub mod actors;
pub mod admission;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod datadir;
pub mod error;
pub mod ids;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod protocol;
pub mod providers;
pub mod ratelimit;
pub mod routes;
pub mod service;
pub mod startup;
pub mod store;
pub mod webhook_cache;
pub mod writer;
