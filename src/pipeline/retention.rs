//! Retention: every sweep, deliveries past the retention window are expired (their
//! payloads dropped, the row kept as `expired`), and expired rows past a second window
//! are pruned. The work goes through the delivery writer, the only writer to the queue,
//! one bounded step at a time so that ingest never waits behind a long delete.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::writer::DeliveryWriter;
use crate::store::RETENTION_STEP;

/// Sweeps every `every` until `shutdown` is cancelled.
pub async fn run(
    writer: DeliveryWriter,
    retention: Duration,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut interval = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let (mut expired, mut pruned) = (0, 0);
        // Step by step until a step finds less than a full step's work.
        while !shutdown.is_cancelled() {
            match writer.apply_retention(retention).await {
                Ok((e, p)) => {
                    expired += e;
                    pruned += p;
                    if e < RETENTION_STEP && p < RETENTION_STEP {
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "retention failed");
                    break;
                }
            }
        }
        if expired + pruned > 0 {
            tracing::info!(expired, pruned, "retention applied");
        }
    }
}
