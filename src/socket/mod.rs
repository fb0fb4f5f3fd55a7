//! The agent socket (`GET /v1/agent/connect`): one [`session::AgentSession`] actor per
//! connected agent. [`window::Window`] is the no-gap, no-duplicate state of what the
//! session has taken from the queue and sent; [`wire`] reads and writes the socket's
//! WebSocket frames within their limits; [`crate::signer`] signs each delivery as it goes out.

pub mod session;
pub mod window;
pub mod wire;

pub use session::AgentSession;
