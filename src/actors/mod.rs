//! Actors: the [`registry::Registry`] knows which agents are online and routes each
//! committed delivery to the right [`session::AgentSession`], one per agent socket;
//! [`wire`] reads and writes that socket's WebSocket frames within their limits.

pub mod messages;
pub mod registry;
pub mod session;
pub mod wire;

pub use registry::Registry;
pub use session::AgentSession;
