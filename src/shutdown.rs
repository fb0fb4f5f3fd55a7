//! What asks the process to stop: `hookhub serve` and `hookhub listen` both end on it.

use std::future::Future;

/// Resolves at SIGINT or SIGTERM. The handlers are installed by this call, not when the
/// future is first polled: whoever starts the hub may send SIGTERM as soon as it says it
/// listens, and a signal before the handler would kill it without its shutdown.
pub fn signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (term, interrupt) {
                (Ok(mut term), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
