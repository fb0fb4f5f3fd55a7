//! Telling a provider's retry from a new event, on SQLite, without a random write per
//! delivery.
//!
//! A provider's delivery id (a GitHub GUID, a Stripe event id) is random, so an index on
//! it takes each new delivery's key at a random place: at full load that was one page of
//! WAL, and one page more at the next checkpoint, for every delivery, more than a third
//! of all the hub wrote (BENCHMARKS.md). Here a key goes first to memory, and to
//! `delivery_dedupe` only in bulk: once [`MERGE_AT`] are waiting, each commit takes the
//! oldest [`MERGE_CHUNK`] of them along, in key order, so that one page takes many keys
//! at once. (The chunk bounds what a merge adds to one commit: all 16,384 keys at once
//! held a commit up for tens of milliseconds.) The gain is largest while a day's keys fill
//! fewer pages than a chunk has keys (~160,000 a day); far beyond that a key costs close
//! to a page again, but a 1 KiB one.
//!
//! Nothing is lost with the memory: a key's source is its delivery's row, committed with
//! the delivery. `store_meta.dedupe_merged_seq` says up to which row every key is in the
//! table; the keys of the rows after it are the ones in memory, and a hub that starts
//! merges them from the rows before it takes its first batch.
//!
//! A key in the table is `(day, 8 bytes of SHA-256)`: the day it was received, so that
//! retention drops whole days and a lookup probes only the days kept, and a hash, so that
//! an entry is a few bytes whatever the provider's id. A lookup joins the delivery's row
//! and compares the real ids, so two keys that share a hash never make a new event a
//! repeat; the second of them is only not remembered (a repeat of it would be delivered
//! again, which at-least-once allows).

use std::collections::{BTreeSet, HashMap};

use sha2::{Digest, Sha256};
use sqlx::SqliteConnection;

use super::StoreError;
use crate::domain::ids::{DeliveryId, WebhookId};

/// Keys held in memory before they are merged into the table in one go. The more there
/// are, the more of them share each page they are written to; each is ~150 bytes here.
pub const MERGE_AT: usize = 16_384;
/// Keys one merge writes, the oldest first.
pub const MERGE_CHUNK: usize = 4_096;

const DAY_MS: i64 = 86_400_000;

/// A delivery that first carried a provider delivery id on its webhook.
#[derive(Clone, Debug)]
pub struct Original {
    pub id: DeliveryId,
    pub seq: i64,
    pub received_at: i64,
}

/// The keys of the deliveries committed since the last merge, and of the batch being
/// written (`staged`), which join them when it commits.
#[derive(Default)]
pub struct RecentKeys {
    committed: HashMap<(WebhookId, String), Original>,
    staged: Vec<((WebhookId, String), Original)>,
    /// The days present in the table: what a lookup probes.
    days: BTreeSet<i64>,
    /// A merge written into the open transaction, to take effect if it commits.
    merging: Option<Merge>,
    /// The highest row whose key is in the table (with a merge that committed).
    merged_seq: i64,
}

struct Merge {
    merged_seq: i64,
    days: BTreeSet<i64>,
    /// The keys it wrote, to leave memory when it commits.
    keys: Vec<(WebhookId, String)>,
}

fn key_hash(webhook_id: &str, provider_delivery_id: &str) -> i64 {
    let mut h = Sha256::new();
    h.update(webhook_id.as_bytes());
    h.update([0]);
    h.update(provider_delivery_id.as_bytes());
    let digest = h.finalize();
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

impl RecentKeys {
    /// Loads what the table holds and merges every key it lacks (those of the rows after
    /// `dedupe_merged_seq`: the last run's keys in memory, or all of a database from before
    /// this table), committing a chunk at a time.
    pub async fn open(conn: &mut SqliteConnection) -> Result<Self, StoreError> {
        let merged_seq: i64 =
            sqlx::query_scalar("SELECT value FROM store_meta WHERE name = 'dedupe_merged_seq'")
                .fetch_one(&mut *conn)
                .await?;
        // The distinct days, by skipping from one to the next on the primary key.
        let days: Vec<i64> = sqlx::query_scalar(
            "WITH RECURSIVE d(day) AS (
                 SELECT MIN(day) FROM delivery_dedupe
                 UNION ALL
                 SELECT (SELECT MIN(day) FROM delivery_dedupe WHERE day > d.day) FROM d
                 WHERE d.day IS NOT NULL)
             SELECT day FROM d WHERE day IS NOT NULL",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut keys = Self {
            days: days.into_iter().collect(),
            merged_seq,
            ..Self::default()
        };
        loop {
            let rows: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
                "SELECT seq, webhook_id, provider_delivery_id, id, received_at FROM deliveries
                 WHERE seq > ? AND provider_delivery_id IS NOT NULL
                   AND status NOT IN ('rejected', 'duplicate')
                 ORDER BY seq LIMIT ?",
            )
            .bind(keys.merged_seq)
            .bind(MERGE_CHUNK as i64)
            .fetch_all(&mut *conn)
            .await?;
            let Some(&(last, ..)) = rows.last() else {
                break;
            };
            for (seq, webhook_id, pid, id, received_at) in rows {
                keys.committed.insert(
                    (WebhookId::from_trusted(webhook_id), pid),
                    Original {
                        id: DeliveryId::from_trusted(id),
                        seq,
                        received_at,
                    },
                );
            }
            sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
            let merged = match keys.write_merge(conn, last).await {
                Ok(()) => sqlx::query("COMMIT")
                    .execute(&mut *conn)
                    .await
                    .map(drop)
                    .map_err(StoreError::from),
                Err(e) => Err(e),
            };
            if let Err(e) = merged {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                return Err(e);
            }
            keys.committed_transaction();
        }
        Ok(keys)
    }

    /// The committed original of each key held in memory.
    pub fn find(&self, webhook_id: &WebhookId, pid: &str) -> Option<&Original> {
        // The map is keyed by owned strings; a lookup without allocating would need a
        // borrowed key type, for a map that a batch probes a few times at most per ingest.
        self.committed.get(&(webhook_id.clone(), pid.to_owned()))
    }

    /// The days a table lookup must probe, as JSON for `json_each`.
    pub fn days_json(&self) -> Result<String, StoreError> {
        encode("the days of dedupe keys", &self.days)
    }

    pub fn hash(webhook_id: &str, pid: &str) -> i64 {
        key_hash(webhook_id, pid)
    }

    /// A delivery of the open transaction that carries a provider delivery id first.
    pub fn stage(&mut self, webhook_id: &WebhookId, pid: &str, original: Original) {
        self.staged
            .push(((webhook_id.clone(), pid.to_owned()), original));
    }

    /// Whether the transaction about to commit should merge the keys in memory.
    pub fn merge_due(&self) -> bool {
        self.merging.is_none() && self.committed.len() >= MERGE_AT
    }

    /// Writes the oldest committed keys in memory, up to [`MERGE_CHUNK`] of them, into the
    /// table in key order, inside the open transaction, and moves `dedupe_merged_seq`
    /// past them: to `committed_seq`, the last row committed, when it takes them all (the
    /// caller vouches that every original up to that row is in memory), else to the last
    /// one taken. Takes effect with [`RecentKeys::committed_transaction`].
    pub async fn write_merge(
        &mut self,
        conn: &mut SqliteConnection,
        committed_seq: i64,
    ) -> Result<(), StoreError> {
        let mut oldest: Vec<(i64, &(WebhookId, String))> =
            self.committed.iter().map(|(k, o)| (o.seq, k)).collect();
        let all = oldest.len() <= MERGE_CHUNK;
        if !all {
            oldest.select_nth_unstable(MERGE_CHUNK - 1);
            oldest.truncate(MERGE_CHUNK);
        }
        let upto = match oldest.iter().map(|(seq, _)| *seq).max() {
            Some(last) if !all => last,
            _ => committed_seq,
        };
        let mut entries: Vec<(i64, i64, i64)> = oldest
            .iter()
            .map(|(seq, (webhook_id, pid))| {
                let received_at = self.committed[&(webhook_id.clone(), pid.clone())].received_at;
                (
                    received_at.div_euclid(DAY_MS),
                    key_hash(webhook_id.as_str(), pid),
                    *seq,
                )
            })
            .collect();
        entries.sort_unstable();
        let keys: Vec<(WebhookId, String)> = oldest.into_iter().map(|(_, k)| k.clone()).collect();
        let days: BTreeSet<i64> = entries.iter().map(|e| e.0).collect();
        let json = encode("the dedupe keys to merge", &entries)?;
        sqlx::query(
            "INSERT OR IGNORE INTO delivery_dedupe (day, key, seq)
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
                    json_extract(value, '$[2]')
             FROM json_each(?)",
        )
        .bind(json)
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE store_meta SET value = ? WHERE name = 'dedupe_merged_seq'")
            .bind(upto)
            .execute(&mut *conn)
            .await?;
        self.merging = Some(Merge {
            merged_seq: upto,
            days,
            keys,
        });
        Ok(())
    }

    /// The open transaction committed: its keys join memory, and the keys a merge in it
    /// wrote leave memory.
    pub fn committed_transaction(&mut self) {
        if let Some(merge) = self.merging.take() {
            for key in &merge.keys {
                self.committed.remove(key);
            }
            self.days.extend(merge.days);
            self.merged_seq = merge.merged_seq;
        }
        for (key, original) in self.staged.drain(..) {
            self.committed.entry(key).or_insert(original);
        }
    }

    /// The open transaction was rolled back: nothing of it happened.
    pub fn rolled_back(&mut self) {
        self.staged.clear();
        self.merging = None;
    }

    /// Retention dropped everything received before `cutoff`: forget those keys, and
    /// answer the days before it, for the statement that deletes them from the table.
    pub fn forget_before(&mut self, cutoff: i64) -> i64 {
        let first_kept = cutoff.div_euclid(DAY_MS);
        self.committed.retain(|_, o| o.received_at >= cutoff);
        self.days = self.days.split_off(&first_kept);
        first_kept
    }
}

fn encode(what: &'static str, value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode { what, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original(seq: i64, received_at: i64) -> Original {
        Original {
            id: DeliveryId::generate(),
            seq,
            received_at,
        }
    }

    #[test]
    fn a_key_is_remembered_only_once_its_transaction_commits() {
        let webhook = WebhookId::generate();
        let mut keys = RecentKeys::default();
        keys.stage(&webhook, "a", original(1, 0));
        assert!(keys.find(&webhook, "a").is_none(), "not before the commit");
        keys.rolled_back();
        keys.committed_transaction();
        assert!(keys.find(&webhook, "a").is_none(), "a rollback forgets it");
        keys.stage(&webhook, "a", original(2, 0));
        keys.committed_transaction();
        assert_eq!(keys.find(&webhook, "a").unwrap().seq, 2);
        assert!(
            keys.find(&WebhookId::generate(), "a").is_none(),
            "per webhook"
        );
    }

    #[test]
    fn retention_forgets_keys_and_days_before_its_cutoff() {
        let webhook = WebhookId::generate();
        let mut keys = RecentKeys {
            days: [1, 2, 3].into_iter().collect(),
            ..RecentKeys::default()
        };
        keys.stage(&webhook, "old", original(1, DAY_MS + 5));
        keys.stage(&webhook, "new", original(2, 3 * DAY_MS));
        keys.committed_transaction();
        assert_eq!(keys.forget_before(2 * DAY_MS + 1), 2);
        assert!(keys.find(&webhook, "old").is_none());
        assert!(keys.find(&webhook, "new").is_some());
        assert_eq!(keys.days_json().unwrap(), "[2,3]");
    }

    #[test]
    fn the_hash_separates_the_webhook_from_the_id() {
        assert_ne!(key_hash("whk_a", "bc"), key_hash("whk_ab", "c"));
        assert_eq!(key_hash("whk_a", "bc"), key_hash("whk_a", "bc"));
    }
}
