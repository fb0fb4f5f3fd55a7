//! Retention's statements, one bounded step at a time, run by the delivery writer.

use rusqlite::{params, Connection};

use super::StoreError;

/// Most rows one retention step changes, so that a large sweep is many short
/// transactions between which ingest commits, not one that holds the writer for seconds.
pub const RETENTION_STEP: u64 = 5_000;

/// Applies one step of retention: unacked deliveries older than `cutoff` become `expired`;
/// finished ones (acked, failed, never for the agent) older than it are deleted, and expired ones a retention period later. At
/// most [`RETENTION_STEP`] rows of each; a count equal to it means there may be more.
///
/// Dedupe keys go too, as many per step, those of the rows numbered before the first row
/// received at or after `cutoff`: a repeat is recognised for the retention period. (Row
/// numbers follow receipt to within the few milliseconds between a request's receipt and
/// its commit, so a key may go that much early.)
pub fn apply_retention(
    conn: &Connection,
    cutoff: i64,
    expired_cutoff: i64,
) -> Result<(u64, u64), StoreError> {
    conn.prepare_cached(
        "DELETE FROM delivery_dedupe WHERE seq IN (
             SELECT seq FROM delivery_dedupe
             WHERE seq < COALESCE(
                 (SELECT seq FROM deliveries WHERE received_at >= ?1 ORDER BY received_at LIMIT 1),
                 (SELECT MAX(seq) + 1 FROM deliveries))
             ORDER BY seq LIMIT ?2)",
    )?
    .execute(params![cutoff, RETENTION_STEP as i64])?;
    let expired = conn
        .prepare_cached(
            "UPDATE deliveries SET status = 'expired' WHERE seq IN (
                 SELECT seq FROM deliveries
                 WHERE received_at < ?1 AND status IN ('queued', 'sent') LIMIT ?2)",
        )?
        .execute(params![cutoff, RETENTION_STEP as i64])? as u64;
    let pruned = conn
        .prepare_cached(
            "DELETE FROM deliveries WHERE seq IN (
                 SELECT seq FROM deliveries
                 WHERE (received_at < ?1 AND status IN ('acked', 'rejected', 'duplicate', 'failed'))
                    OR (received_at < ?2 AND status = 'expired')
                 LIMIT ?3)",
        )?
        .execute(params![cutoff, expired_cutoff, RETENTION_STEP as i64])? as u64;
    Ok((expired, pruned))
}
