//! The delivery writer's statements: one group-commit transaction per batch, on a
//! connection of the writer's own. Nothing else writes to `deliveries`.
//!
//! The writer runs on a thread of its own and owns this connection outright (`rusqlite`,
//! not the pool's `sqlx`): every statement runs on the writer's thread. Through `sqlx`,
//! each statement text was a hand-off to the connection's worker thread and back, and at
//! a commit per delivery those hand-offs cost more than SQLite's own work (BENCHMARKS.md).
//! Without them a statement is cheap enough to run once per row, so the batch binds each
//! row, send and ack to a prepared statement instead of encoding them as JSON for SQLite
//! to take apart again.

use std::{collections::HashMap, path::Path, time::Duration};

use bytes::Bytes;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::{
    attempts::{self, Failed},
    dedupe,
    queue::{COUNT_PENDING, PENDING_SELECT},
    BatchWriter, OwnedAgent, StoreError,
};
use crate::domain::{
    ids::{AgentId, DeliveryId, WebhookId},
    AttemptEnd, BodyCut, DeliveryStatus, DiscardOutcome, HandlerResult, NewDelivery,
    PendingDelivery, RedeliverFilter, SealedSecrets, Via,
};

/// The highest `seq` and `queue_seq` so far: the writer numbers new rows after them.
fn max_seqs(conn: &Connection) -> Result<(i64, i64), StoreError> {
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(seq), 0), COALESCE(MAX(queue_seq), 0) FROM deliveries",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// The delivery that first carried a provider delivery id on a webhook: found by its key
/// in `delivery_dedupe` ([`dedupe`]), and a match only if its row carries the very same
/// ids (a shared hash is not a repeat).
const FIND_ORIGINAL: &str = "SELECT d.id FROM delivery_dedupe k JOIN deliveries d ON d.seq = k.seq
    WHERE k.key = ? AND d.webhook_id = ? AND d.provider_delivery_id = ?";

/// Opens the writer's transaction and finds, for each `(webhook id, provider delivery
/// id)`, the delivery that first carried it on that webhook, if any.
///
/// The writer owns the transaction by hand (`BEGIN` here, `COMMIT` at the end of
/// [`write_batch`], [`rollback`] on any error), because the batch's statements are
/// spread over the writer's plan (`pipeline/writer`), not one closure.
fn begin_batch(
    conn: &Connection,
    keys: &[(&str, &str)],
) -> Result<HashMap<(WebhookId, String), DeliveryId>, StoreError> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let mut originals = HashMap::new();
    if keys.is_empty() {
        return Ok(originals);
    }
    let mut find = conn.prepare_cached(FIND_ORIGINAL)?;
    for &(webhook_id, pid) in keys {
        let key = (
            WebhookId::from_trusted(webhook_id.to_owned()),
            pid.to_owned(),
        );
        if originals.contains_key(&key) {
            continue;
        }
        let found: Option<String> = find
            .query_row(
                params![dedupe::key(webhook_id, pid), webhook_id, pid],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = found {
            originals.insert(key, DeliveryId::from_trusted(id));
        }
    }
    Ok(originals)
}

/// Commits a transaction opened by [`begin_batch`], for a batch whose last statements
/// came after [`write_batch`].
fn commit(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached("COMMIT")?.execute([])?;
    Ok(())
}

/// Ends a transaction opened by [`begin_batch`] without keeping anything. Harmless when
/// none is open (a failed `COMMIT` may or may not have ended it).
fn rollback(conn: &Connection) {
    if conn.is_autocommit() {
        return;
    }
    if let Err(e) = conn.execute_batch("ROLLBACK") {
        tracing::debug!(error = %e, "rollback after a failed batch");
    }
}

/// A row for [`BatchWriter::write`].
pub struct InsertRow<'a> {
    /// Receipt order, assigned by the writer (the only inserter), so that the payload row
    /// names its delivery without reading it back.
    pub seq: i64,
    pub d: &'a NewDelivery,
    pub status: DeliveryStatus,
    pub queue_seq: Option<i64>,
    pub reason: Option<&'a str>,
    /// The whole body's size and SHA-256 where `d.body` keeps only its start (rejected
    /// requests); `None`: the body is whole.
    pub cut: Option<&'a BodyCut>,
}

/// What a batch writes in bulk: new rows, send markers and acks.
pub struct BatchWrites<'a> {
    /// In receipt order.
    pub rows: &'a [InsertRow<'a>],
    /// One entry per send, with the agent it went to and how: a delivery sent twice
    /// before the commit counts two attempts.
    pub sent: &'a [(AgentId, Via, DeliveryId)],
    /// Each ack with the agent that sent it and what its handler answered, if it said; an
    /// agent acks only its own deliveries.
    pub acks: &'a [(AgentId, DeliveryId, Option<HandlerResult>)],
    /// Agents seen (connected or disconnected), with when: `[agent, at]`.
    pub seen: &'a [(AgentId, i64)],
    pub at: i64,
}

const INSERT_DELIVERY: &str = "INSERT INTO deliveries (seq, id, webhook_id, agent_id, status,
    queue_seq, event, provider_delivery_id, verified, reason, received_at, attempts, size_bytes,
    body_sha256)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)";
const INSERT_PAYLOAD: &str = "INSERT INTO delivery_payloads (seq, headers, body) VALUES (?, ?, ?)";
/// A dedupe key ([`dedupe`]). A key already there (the same hash, almost never) keeps its
/// first delivery.
const INSERT_KEY: &str = "INSERT OR IGNORE INTO delivery_dedupe (key, seq) VALUES (?, ?)";
/// `count` sends of one delivery.
const MARK_SENT: &str = "UPDATE deliveries SET status = 'sent', sent_at = ?1,
        attempts = attempts + ?2, sent_via = ?3
    WHERE id = ?4 AND status IN ('queued', 'sent')";
/// An ack, taking over the sends of its delivery made in the same batch (`?2` of them,
/// `via` `?3`), so that a delivery sent and acked between two commits (most of them, in a
/// backlog flush) is written once. It reaches only its own agent's delivery, and answers
/// the delivery's size only if it moved it to `acked`.
const ACK: &str = "UPDATE deliveries SET status = 'acked', acked_at = ?1,
        sent_at = CASE WHEN ?2 > 0 THEN ?1 ELSE sent_at END,
        sent_via = CASE WHEN ?2 > 0 THEN ?3 ELSE sent_via END,
        attempts = attempts + ?2,
        result_status = ?4, result_ms = ?5
    WHERE id = ?6 AND agent_id = ?7 AND status IN ('queued', 'sent')
    RETURNING size_bytes";
/// An agent's last-seen time.
const SEEN: &str = "UPDATE agents SET last_seen_at = ? WHERE id = ?";

/// Applies a batch's rows, sends and acks, and with `commit` ends the transaction.
/// Returns how many deliveries each agent's acks moved from pending to `acked`, and their
/// bodies' bytes.
fn write_batch(
    conn: &Connection,
    w: &BatchWrites<'_>,
    commit: bool,
) -> Result<HashMap<AgentId, (u64, i64)>, StoreError> {
    if !w.rows.is_empty() {
        let mut insert = conn.prepare_cached(INSERT_DELIVERY)?;
        let mut payload = conn.prepare_cached(INSERT_PAYLOAD)?;
        for r in w.rows {
            let d = r.d;
            insert.execute(params![
                r.seq,
                d.id.as_str(),
                d.webhook_id.as_str(),
                d.agent_id.as_str(),
                r.status.as_str(),
                r.queue_seq,
                d.event.as_deref(),
                d.provider_delivery_id.as_deref(),
                d.verified,
                r.reason,
                d.received_at,
                r.cut.map_or(d.body.len() as i64, |c| c.size_bytes),
                r.cut.map(|c| c.sha256.as_str()),
            ])?;
            payload.execute(params![r.seq, d.headers.as_str(), d.body.as_ref()])?;
        }
        // The dedupe key of each delivery that first carries its provider's id, in key
        // order.
        let mut keys: Vec<(i64, i64)> = w
            .rows
            .iter()
            .filter(|r| r.status == DeliveryStatus::Queued)
            .filter_map(|r| {
                let pid = r.d.provider_delivery_id.as_deref()?;
                Some((dedupe::key(r.d.webhook_id.as_str(), pid), r.seq))
            })
            .collect();
        if !keys.is_empty() {
            keys.sort_unstable();
            let mut insert_key = conn.prepare_cached(INSERT_KEY)?;
            for (key, seq) in keys {
                insert_key.execute(params![key, seq])?;
            }
        }
    }

    // Sends per delivery: to whom, the last way, how many.
    let mut sends: HashMap<&str, (&str, &str, i64)> = HashMap::new();
    for (agent, via, id) in w.sent {
        let entry = sends
            .entry(id.as_str())
            .or_insert((agent.as_str(), via.as_str(), 0));
        entry.1 = via.as_str();
        entry.2 += 1;
    }
    // Each ack once, taking over the sends of its delivery made to the same agent.
    let mut acked: HashMap<AgentId, (u64, i64)> = HashMap::new();
    if !w.acks.is_empty() {
        let mut ack = conn.prepare_cached(ACK)?;
        let mut seen = std::collections::HashSet::new();
        for (agent, id, result) in w.acks {
            let (id_str, agent_str) = (id.as_str(), agent.as_str());
            if !seen.insert((id_str, agent_str)) {
                continue;
            }
            let (sends_now, via) = match sends.get(id_str) {
                Some(&(to, via, n)) if to == agent_str => {
                    sends.remove(id_str);
                    (n, Some(via))
                }
                _ => (0, None),
            };
            let size: Option<i64> = ack
                .query_row(
                    params![
                        w.at,
                        sends_now,
                        via,
                        result.map(|r| r.status),
                        result.map(|r| r.ms as i64),
                        id_str,
                        agent_str,
                    ],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(size) = size {
                let entry = acked.entry(agent.clone()).or_insert((0, 0));
                entry.0 += 1;
                entry.1 += size;
            }
        }
    }
    if !sends.is_empty() {
        let mut mark = conn.prepare_cached(MARK_SENT)?;
        for (id, (_, via, n)) in sends {
            mark.execute(params![w.at, n, via, id])?;
        }
    }

    if !w.seen.is_empty() {
        // The latest time wins.
        let mut latest: HashMap<&str, i64> = HashMap::new();
        for (agent, at) in w.seen {
            let e = latest.entry(agent.as_str()).or_insert(*at);
            *e = (*e).max(*at);
        }
        let mut seen = conn.prepare_cached(SEEN)?;
        for (agent, at) in latest {
            seen.execute(params![at, agent])?;
        }
    }

    if commit {
        self::commit(conn)?;
    }
    Ok(acked)
}

/// Deletes all but the newest `keep` rejected requests of a webhook, payloads included
/// (by cascade): what senders that fail verification can add to the data directory stays
/// bounded per webhook however many of them there are.
fn prune_rejected(conn: &Connection, webhook_id: &WebhookId, keep: i64) -> Result<u64, StoreError> {
    let done = conn
        .prepare_cached(
            "DELETE FROM deliveries WHERE webhook_id = ?1 AND status = 'rejected' AND seq <= (
                SELECT seq FROM deliveries WHERE webhook_id = ?1 AND status = 'rejected'
                ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
        )?
        .execute(params![webhook_id.as_str(), keep])?;
    Ok(done as u64)
}

/// What [`BatchWriter::requeue`] did.
pub enum Requeued {
    Queued {
        pending: Box<PendingDelivery>,
        /// It was pending already, so the backlog did not grow.
        was_pending: bool,
    },
    /// It is not pending, and there was no `room` for it.
    NoRoom,
    /// Not the owner's, or never for the agent (rejected, duplicate).
    NotFound,
}

/// A queued delivery as [`PENDING_SELECT`] reads it.
fn pending_from_row(r: &rusqlite::Row) -> Result<PendingDelivery, StoreError> {
    let provider: String = r.get("provider")?;
    let body: Vec<u8> = r.get("body")?;
    Ok(PendingDelivery {
        queue_seq: r.get("queue_seq")?,
        id: DeliveryId::from_trusted(r.get("id")?),
        webhook_id: WebhookId::from_trusted(r.get("webhook_id")?),
        agent_id: AgentId::from_trusted(r.get("agent_id")?),
        provider: super::stored_provider(&provider)?,
        event: r.get("event")?,
        received_at: r.get("received_at")?,
        verified: r.get::<_, i64>("verified")? != 0,
        attempts: r.get("attempts")?,
        attempt_base: r.get("attempt_base")?,
        headers: r.get("headers")?,
        body: Bytes::from(body),
        secrets: std::sync::Arc::new(SealedSecrets {
            signing: r.get("signing_secret")?,
            previous: r.get("previous_secret")?,
            previous_until: r.get("previous_secret_until")?,
            provider: r.get("provider_secret")?,
        }),
    })
}

/// Puts a delivery back at the end of its agent's queue, its last attempt closed in the
/// history. Without `room` in the backlog, only one already pending is: moving it adds
/// nothing.
fn requeue(
    conn: &Connection,
    owner: &OwnedAgent,
    webhook_id: &WebhookId,
    id: &DeliveryId,
    queue_seq: i64,
    room: bool,
    at: i64,
) -> Result<Requeued, StoreError> {
    let was: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT seq, status FROM deliveries WHERE id = ? AND webhook_id = ? AND agent_id = ?",
        )?
        .query_row(
            params![id.as_str(), webhook_id.as_str(), owner.id().as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((seq, Some(was))) = was.map(|(seq, st)| (seq, DeliveryStatus::parse(&st))) else {
        return Ok(Requeued::NotFound);
    };
    if matches!(was, DeliveryStatus::Rejected | DeliveryStatus::Duplicate) {
        return Ok(Requeued::NotFound);
    }
    let was_pending = matches!(was, DeliveryStatus::Queued | DeliveryStatus::Sent);
    if !room && !was_pending {
        return Ok(Requeued::NoRoom);
    }
    attempts::close_for_redeliver(conn, seq, at)?;
    conn.prepare_cached(
        "UPDATE deliveries SET status = 'queued', queue_seq = ?, reason = NULL,
             result_status = NULL, result_ms = NULL, attempt_base = attempts
         WHERE seq = ?",
    )?
    .execute(params![queue_seq, seq])?;
    let pending = conn
        .prepare_cached(&format!("{PENDING_SELECT} WHERE d.seq = ?"))?
        .query_and_then(params![seq], pending_from_row)?
        .next()
        .ok_or_else(|| StoreError::Corrupt(format!("delivery {seq} vanished while requeued")))??;
    Ok(Requeued::Queued {
        pending: Box::new(pending),
        was_pending,
    })
}

/// How many deliveries an agent has pending (queued or sent), and their bodies' bytes.
fn count_pending(conn: &Connection, agent_id: &AgentId) -> Result<(i64, i64), StoreError> {
    Ok(conn
        .prepare_cached(COUNT_PENDING)?
        .query_row(params![agent_id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

/// More than a small delivery writes (its row, its payload, an entry in each index: a few
/// pages). A probe that fit where no delivery does would call healthy a hub that refuses
/// every delivery.
const PROBE_BYTES: i64 = 64 * 1024;

/// A small write for the delivery writer to try when its commits have been failing,
/// on its connection, inside its transaction. It rewrites the one row of
/// `writer_probe` with [`PROBE_BYTES`] of filler.
fn probe(conn: &Connection, at: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO writer_probe (id, at, filler) VALUES (1, ?, zeroblob(?))
         ON CONFLICT (id) DO UPDATE SET at = excluded.at, filler = excluded.filler",
    )?
    .execute(params![at, PROBE_BYTES])?;
    Ok(())
}

/// Statements the writer's connection keeps prepared: every statement above, and the
/// failure path's and retention's.
const STATEMENT_CACHE: usize = 64;

/// [`BatchWriter`] on SQLite: the writer's own connection, with its transaction opened
/// and ended by hand (see `begin_batch`). Every method runs to its end without waiting
/// on anything but SQLite, on the thread that calls it: the writer's.
pub struct SqliteBatch {
    conn: Connection,
}

impl SqliteBatch {
    /// The writer's connection to the database at `path`, which [`super::Store::open`]
    /// has made and migrated: the same settings as the pool's (`synchronous=FULL`,
    /// foreign keys, the busy wait, the checkpoint bound).
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "the database would not take WAL mode (it is in {mode})"
            )));
        }
        conn.execute_batch(&format!(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
             PRAGMA wal_autocheckpoint = {};",
            super::WAL_AUTOCHECKPOINT_PAGES
        ))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Self { conn })
    }

    /// Inserts one row, numbered after the last, inside the open batch: for tests that
    /// seed a store directly. The writer never calls it; it numbers rows itself.
    pub async fn insert(
        &mut self,
        d: &NewDelivery,
        status: DeliveryStatus,
        queue_seq: Option<i64>,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let seq: i64 = self.conn.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM deliveries",
            [],
            |r| r.get(0),
        )?;
        let rows = [InsertRow {
            seq,
            d,
            status,
            queue_seq,
            reason,
            cut: None,
        }];
        let w = BatchWrites {
            rows: &rows,
            sent: &[],
            acks: &[],
            seen: &[],
            at: 0,
        };
        write_batch(&self.conn, &w, false).map(drop)
    }
}

impl BatchWriter for SqliteBatch {
    async fn max_seqs(&mut self) -> Result<(i64, i64), StoreError> {
        max_seqs(&self.conn)
    }

    async fn begin(
        &mut self,
        dedupe_keys: &[(&str, &str)],
    ) -> Result<HashMap<(WebhookId, String), DeliveryId>, StoreError> {
        begin_batch(&self.conn, dedupe_keys)
    }

    async fn count_pending(&mut self, agent: &AgentId) -> Result<(i64, i64), StoreError> {
        count_pending(&self.conn, agent)
    }

    async fn write(
        &mut self,
        writes: &BatchWrites<'_>,
        commit: bool,
    ) -> Result<HashMap<AgentId, (u64, i64)>, StoreError> {
        write_batch(&self.conn, writes, commit)
    }

    async fn prune_rejected(
        &mut self,
        webhook_id: &WebhookId,
        keep: i64,
    ) -> Result<u64, StoreError> {
        prune_rejected(&self.conn, webhook_id, keep)
    }

    async fn requeue(
        &mut self,
        owner: &OwnedAgent,
        webhook_id: &WebhookId,
        id: &DeliveryId,
        queue_seq: i64,
        room: bool,
        at: i64,
    ) -> Result<Requeued, StoreError> {
        requeue(&self.conn, owner, webhook_id, id, queue_seq, room, at)
    }

    async fn end_attempts(
        &mut self,
        ends: &[(AgentId, AttemptEnd)],
    ) -> Result<Vec<Failed>, StoreError> {
        attempts::end_attempts(&self.conn, ends)
    }

    async fn discard(
        &mut self,
        owner: &OwnedAgent,
        webhook_id: &WebhookId,
        id: &DeliveryId,
        at: i64,
    ) -> Result<(DiscardOutcome, i64), StoreError> {
        attempts::discard(&self.conn, owner, webhook_id, id, at)
    }

    async fn count_matching(
        &mut self,
        owner: &OwnedAgent,
        webhook_id: &WebhookId,
        filter: &RedeliverFilter,
    ) -> Result<(u64, i64), StoreError> {
        attempts::count_matching(&self.conn, owner, webhook_id, filter)
    }

    async fn requeue_matching(
        &mut self,
        owner: &OwnedAgent,
        webhook_id: &WebhookId,
        filter: &RedeliverFilter,
        first_queue_seq: i64,
    ) -> Result<u64, StoreError> {
        attempts::requeue_matching(&self.conn, owner, webhook_id, filter, first_queue_seq)
    }

    async fn apply_retention(
        &mut self,
        cutoff: i64,
        expired_cutoff: i64,
    ) -> Result<(u64, u64), StoreError> {
        super::retention::apply_retention(&self.conn, cutoff, expired_cutoff)
    }

    async fn probe(&mut self, at: i64) -> Result<(), StoreError> {
        probe(&self.conn, at)
    }

    async fn commit(&mut self) -> Result<(), StoreError> {
        commit(&self.conn)
    }

    async fn rollback(&mut self) {
        rollback(&self.conn)
    }
}
