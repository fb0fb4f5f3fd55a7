//! Telling a provider's retry from a new event, on SQLite.
//!
//! A provider's delivery id (a GitHub GUID, a Stripe event id) is random, so wherever it
//! is indexed, each new one lands on a random page, and SQLite writes a changed page whole
//! to the WAL and again at the checkpoint. In an index of `deliveries` over the
//! webhook id and the provider's id as text, that was a 4 KiB page twice for every
//! delivery, more than a third of what the hub wrote (BENCHMARKS.md). Here the key is
//! 8 bytes of SHA-256, the rowid of a table of its own, written in the delivery's own
//! transaction: an entry is ~15 bytes whatever the provider's id, so the table has few
//! pages, and with 1 KiB pages each costs a quarter of what it did. A lookup is one probe.
//!
//! (Keeping keys in memory and merging them in bulk was tried and measured: at a few
//! hundred thousand keys a merge of 4,096 still changed most pages of the table, so
//! it saved little, and it held the commit it rode with for ~40 ms.)
//!
//! Retention deletes keys by their delivery's row number, whose index grows only at its
//! end (see `store/retention.rs`). A lookup joins the delivery's row and compares
//! the real ids, so two keys that share a hash never make a new event a repeat; the second
//! of them is only not remembered (a repeat of it would be delivered again, which
//! at-least-once allows).

use sha2::{Digest, Sha256};
use sqlx::SqliteConnection;

use super::{json_text, StoreError};

/// Rows whose keys a database from before the dedupe table gets in one transaction.
const BACKFILL_CHUNK: i64 = 16_384;

/// The key of a provider delivery id on a webhook.
pub fn key(webhook_id: &str, provider_delivery_id: &str) -> i64 {
    let mut h = Sha256::new();
    h.update(webhook_id.as_bytes());
    h.update([0]);
    h.update(provider_delivery_id.as_bytes());
    let digest = h.finalize();
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Gives a database from before the dedupe table the keys of its deliveries
/// (`store_meta.dedupe_backfill_upto`, set by the migration that made the table), a chunk
/// per transaction, so that an upgrade recognises the repeats of what it had received.
/// Done once; later starts only read that it is done.
pub async fn backfill(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    loop {
        let (upto, done): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT value FROM store_meta WHERE name = 'dedupe_backfill_upto'),
                    (SELECT value FROM store_meta WHERE name = 'dedupe_backfilled')",
        )
        .fetch_one(&mut *conn)
        .await?;
        if done >= upto {
            return Ok(());
        }
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT seq, webhook_id, provider_delivery_id FROM deliveries
             WHERE seq > ? AND seq <= ? AND provider_delivery_id IS NOT NULL
               AND status NOT IN ('rejected', 'duplicate')
             ORDER BY seq LIMIT ?",
        )
        .bind(done)
        .bind(upto)
        .bind(BACKFILL_CHUNK)
        .fetch_all(&mut *conn)
        .await?;
        let last = match rows.last() {
            Some(&(seq, ..)) if rows.len() as i64 == BACKFILL_CHUNK => seq,
            _ => upto,
        };
        let mut entries: Vec<(i64, i64)> = rows
            .iter()
            .map(|(seq, webhook_id, pid)| (key(webhook_id, pid), *seq))
            .collect();
        entries.sort_unstable();
        sqlx::query(
            "BEGIN IMMEDIATE;
             INSERT OR IGNORE INTO delivery_dedupe (key, seq)
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]')
             FROM json_each(?);
             UPDATE store_meta SET value = ? WHERE name = 'dedupe_backfilled';
             COMMIT",
        )
        .bind(json_text("the dedupe keys to backfill", &entries)?)
        .bind(last)
        .execute(&mut *conn)
        .await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_separates_the_webhook_from_the_id() {
        assert_ne!(key("whk_a", "bc"), key("whk_ab", "c"));
        assert_eq!(key("whk_a", "bc"), key("whk_a", "bc"));
    }
}
