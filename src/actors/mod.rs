//! Actors: the [`registry::Registry`] knows which agents are online and routes each
//! committed delivery to the right [`session::AgentSession`], one per agent socket.

pub mod messages;
pub mod registry;
pub mod session;

pub use registry::Registry;
pub use session::AgentSession;
