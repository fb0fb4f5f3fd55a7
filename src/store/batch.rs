//! The delivery writer's statements: one group-commit transaction per batch, on a
//! connection of the writer's own. Nothing else writes to `deliveries`.

use std::collections::HashMap;

use sqlx::{Row, SqliteConnection};

use super::{
    attempts::{self, Failed},
    dedupe, json_text,
    queue::{count_pending, pending_from_row, PENDING_SELECT},
    BatchWriter, OwnedAgent, StoreError,
};
use crate::domain::{
    ids::{AgentId, DeliveryId, WebhookId},
    AttemptEnd, BodyCut, DeliveryStatus, DiscardOutcome, HandlerResult, NewDelivery,
    PendingDelivery, RedeliverFilter, Via,
};

/// The highest `seq` and `queue_seq` so far: the writer numbers new rows after them.
async fn max_seqs(conn: &mut SqliteConnection) -> Result<(i64, i64), StoreError> {
    Ok(
        sqlx::query_as("SELECT COALESCE(MAX(seq), 0), COALESCE(MAX(queue_seq), 0) FROM deliveries")
            .fetch_one(conn)
            .await?,
    )
}

/// Opens the writer's transaction and, in the same round trip to SQLite's thread, finds
/// for each `(webhook id, provider delivery id)` the delivery that first carried it on
/// that webhook, if any: by its key in `delivery_dedupe` ([`dedupe`]), where a match
/// counts only if its delivery's row carries the very same ids (a shared hash is not a
/// repeat).
///
/// The writer owns the transaction by hand (`BEGIN` here, `COMMIT` at the end of
/// [`write_batch`], [`rollback`] on any error) rather than through `sqlx::Transaction`,
/// because each statement sent on its own is a hand-off to the connection's thread and
/// back, and at thousands of deliveries a second those hand-offs, not SQLite, were most of
/// a commit's time.
async fn begin_batch(
    conn: &mut SqliteConnection,
    keys: &[(&str, &str)],
) -> Result<HashMap<(WebhookId, String), DeliveryId>, StoreError> {
    let look_up: Vec<(&str, &str, i64)> = keys
        .iter()
        .map(|&(webhook_id, pid)| (webhook_id, pid, dedupe::key(webhook_id, pid)))
        .collect();
    let look_up = json_text("the batch's dedupe keys", &look_up)?;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "BEGIN IMMEDIATE;
         SELECT d.webhook_id, d.provider_delivery_id, d.id
         FROM json_each(?) j
         JOIN delivery_dedupe k ON k.key = json_extract(j.value, '$[2]')
         JOIN deliveries d ON d.seq = k.seq
         WHERE d.webhook_id = json_extract(j.value, '$[0]')
             AND d.provider_delivery_id = json_extract(j.value, '$[1]')
         ORDER BY d.seq",
    )
    .bind(look_up)
    .fetch_all(conn)
    .await?;
    let mut originals = HashMap::new();
    for (webhook_id, provider_delivery_id, id) in rows {
        originals
            .entry((WebhookId::from_trusted(webhook_id), provider_delivery_id))
            .or_insert_with(|| DeliveryId::from_trusted(id));
    }
    Ok(originals)
}

/// Commits a transaction opened by [`begin_batch`], for a batch whose last statements
/// could not go with the `COMMIT` of [`write_batch`].
async fn commit(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query("COMMIT").execute(conn).await?;
    Ok(())
}

/// Ends a transaction opened by [`begin_batch`] without keeping anything. Harmless when
/// none is open (a failed `COMMIT` may or may not have ended it).
async fn rollback(conn: &mut SqliteConnection) {
    if let Err(e) = sqlx::query("ROLLBACK").execute(conn).await {
        tracing::debug!(error = %e, "rollback after a failed batch");
    }
}

/// A row for [`BatchWriter::write`].
pub struct InsertRow<'a> {
    /// Receipt order, assigned by the writer (the only inserter) so that the payload row
    /// can name its delivery in the same statement text.
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

const INSERT_COLUMNS: &str = "INSERT INTO deliveries (seq, id, webhook_id, agent_id, status,
    queue_seq, event, provider_delivery_id, verified, reason, received_at, attempts, size_bytes,
    body_sha256)
    VALUES ";
const INSERT_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)";
const INSERT_PAYLOAD_COLUMNS: &str = "INSERT INTO delivery_payloads (seq, headers, body) VALUES ";
const INSERT_PAYLOAD_ROW: &str = "(?, ?, ?)";
/// Rows per insert statement: a batch is `k` statements of the first size, then at most
/// three of the second and seven of the third.
const INSERT_SIZES: [usize; 3] = [32, 8, 1];
// The statements below are joined into one text per round trip, so they take plain `?`
// parameters only: sqlx binds those in order across the statements of a text, while a
// numbered `?N` would count from the text's first statement.
/// Sends of one count, `[id, via]`.
const MARK_SENT: &str =
    "UPDATE deliveries SET status = 'sent', sent_at = ?, attempts = attempts + ?, sent_via = s.via
    FROM (SELECT value ->> '$[0]' AS id, value ->> '$[1]' AS via FROM json_each(?)) AS s
    WHERE deliveries.id = s.id AND deliveries.status IN ('queued', 'sent')";
/// The batch's dedupe keys, `[key, seq]` ([`dedupe`]). A key already there (the same
/// hash, almost never) keeps its first delivery.
const INSERT_KEYS: &str = "INSERT OR IGNORE INTO delivery_dedupe (key, seq)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)";
/// Every ack of the batch, whichever agent's, in one statement: `[id, agent, sends, via,
/// result status, result ms]`, where `sends` counts the sends of this same batch (made
/// `via`), recorded here instead of by [`MARK_SENT`] so that a delivery sent and acked
/// between two commits (most of them, in a backlog flush) is written once. Each ack
/// reaches only its own agent's delivery.
const ACK: &str = "UPDATE deliveries SET status = 'acked', acked_at = ?,
        sent_at = CASE WHEN a.sends > 0 THEN ? ELSE sent_at END,
        sent_via = CASE WHEN a.sends > 0 THEN a.via ELSE sent_via END,
        attempts = attempts + a.sends,
        result_status = a.result_status, result_ms = a.result_ms
    FROM (SELECT value ->> '$[0]' AS id, value ->> '$[1]' AS agent_id, value ->> '$[2]' AS sends,
                 value ->> '$[3]' AS via, value ->> '$[4]' AS result_status,
                 value ->> '$[5]' AS result_ms
          FROM json_each(?)) AS a
    WHERE deliveries.id = a.id AND deliveries.agent_id = a.agent_id
      AND deliveries.status IN ('queued', 'sent')";
/// How many of the batch's acks (as [`ACK`] takes them) will move a delivery to `acked`,
/// per agent: read just before [`ACK`] in the same transaction, so it is exactly what
/// [`ACK`] changes, in one row per agent rather than one per ack.
const ACKS_TAKING_EFFECT: &str =
    "SELECT d.agent_id, count(*), SUM(d.size_bytes) FROM json_each(?) a
    JOIN deliveries d ON d.id = json_extract(a.value, '$[0]')
        AND d.agent_id = json_extract(a.value, '$[1]')
    WHERE d.status IN ('queued', 'sent')
    GROUP BY d.agent_id";

/// Each agent's last-seen time, from the batch's `[agent, at]` pairs: the latest wins.
const SEEN: &str = "UPDATE agents SET last_seen_at = s.at
    FROM (SELECT json_extract(value, '$[0]') AS agent_id, MAX(json_extract(value, '$[1]')) AS at
          FROM json_each(?) GROUP BY 1) AS s
    WHERE agents.id = s.agent_id";

/// Applies a batch's rows, sends and acks, and with `commit` ends the transaction, in two
/// round trips: the 32-row inserts, then everything else. Each statement text depends only
/// on how many inserts of each size it holds, so the connection's statement cache keeps
/// them all prepared (about a hundred texts). Returns how many deliveries each agent's
/// acks moved from pending to `acked`, and their bodies' bytes. (A delivery sent twice
/// since the last commit takes a round trip more: rare.)
async fn write_batch(
    conn: &mut SqliteConnection,
    w: &BatchWrites<'_>,
    commit: bool,
) -> Result<HashMap<AgentId, (u64, i64)>, StoreError> {
    let [big, mid, _] = INSERT_SIZES;
    let (bulk, rest) = w.rows.split_at(w.rows.len() / big * big);
    if !bulk.is_empty() {
        let sql = insert_statements(bulk.len() / big, big);
        bind_rows(sqlx::query(&sql), bulk, big)
            .execute(&mut *conn)
            .await?;
    }

    let mut sends: HashMap<&str, (&str, &str, i64)> = HashMap::new();
    for (agent, via, id) in w.sent {
        let entry = sends
            .entry(id.as_str())
            .or_insert((agent.as_str(), via.as_str(), 0));
        entry.1 = via.as_str();
        entry.2 += 1;
    }
    // Each ack once, taking over the sends of its delivery made to the same agent.
    type Ack<'a> = (
        &'a str,
        &'a str,
        i64,
        Option<&'a str>,
        Option<u16>,
        Option<u64>,
    );
    let mut acks: Vec<Ack> = Vec::with_capacity(w.acks.len());
    let mut seen = std::collections::HashSet::new();
    for (agent, id, result) in w.acks {
        let (id, agent) = (id.as_str(), agent.as_str());
        if !seen.insert((id, agent)) {
            continue;
        }
        let (sends_now, via) = match sends.get(id) {
            Some(&(to, via, n)) if to == agent => {
                sends.remove(id);
                (n, Some(via))
            }
            _ => (0, None),
        };
        acks.push((
            id,
            agent,
            sends_now,
            via,
            result.map(|r| r.status),
            result.map(|r| r.ms),
        ));
    }
    // A delivery sent more than once since the last commit is rare: a statement of its own
    // per count keeps the common case (one send each) in the last round trip.
    let mut by_count: std::collections::BTreeMap<i64, Vec<(&str, &str)>> = Default::default();
    for (id, (_, via, n)) in sends {
        by_count.entry(n).or_default().push((id, via));
    }
    let sent_once = by_count.remove(&1).unwrap_or_default();
    for (n, ids) in by_count {
        sqlx::query(MARK_SENT)
            .bind(w.at)
            .bind(n)
            .bind(json_text("a batch's sends", &ids)?)
            .execute(&mut *conn)
            .await?;
    }

    if !w.seen.is_empty() {
        sqlx::query(SEEN)
            .bind(json_text("the agents seen", &w.seen)?)
            .execute(&mut *conn)
            .await?;
    }

    // The dedupe key of each delivery that first carries its provider's id, in key order.
    let mut keys: Vec<(i64, i64)> = w
        .rows
        .iter()
        .filter(|r| r.status == DeliveryStatus::Queued)
        .filter_map(|r| {
            let pid = r.d.provider_delivery_id.as_deref()?;
            Some((dedupe::key(r.d.webhook_id.as_str(), pid), r.seq))
        })
        .collect();
    keys.sort_unstable();

    let (mids, ones) = (rest.len() / mid, rest.len() % mid);
    let mut sql = insert_statements(mids, mid);
    sql.push_str(&insert_statements(ones, 1));
    sql.push_str(INSERT_KEYS);
    sql.push_str(";\n");
    sql.push_str(MARK_SENT);
    sql.push_str(";\n");
    sql.push_str(ACKS_TAKING_EFFECT);
    sql.push_str(";\n");
    sql.push_str(ACK);
    if commit {
        sql.push_str(";\nCOMMIT");
    }
    let acks = json_text("the batch's acks", &acks)?;
    let (mid_rows, one_rows) = rest.split_at(mids * mid);
    let q = bind_rows(sqlx::query(&sql), mid_rows, mid);
    let acked_by = bind_rows(q, one_rows, 1)
        .bind(json_text("the batch's dedupe keys", &keys)?)
        .bind(w.at)
        .bind(1_i64)
        .bind(json_text("a batch's sends", &sent_once)?)
        .bind(acks.clone())
        .bind(w.at)
        .bind(w.at)
        .bind(acks)
        .fetch_all(&mut *conn)
        .await?;
    let mut acked = HashMap::new();
    for row in acked_by {
        let (agent_id, n, bytes): (String, i64, i64) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        acked.insert(AgentId::from_trusted(agent_id), (n as u64, bytes));
    }
    Ok(acked)
}

/// `count` pairs of insert statements (deliveries, then their payloads) of `rows` rows
/// each, each ending in `;`.
fn insert_statements(count: usize, rows: usize) -> String {
    let one = format!(
        "{INSERT_COLUMNS}{};\n{INSERT_PAYLOAD_COLUMNS}{};\n",
        vec![INSERT_ROW; rows].join(", "),
        vec![INSERT_PAYLOAD_ROW; rows].join(", ")
    );
    one.repeat(count)
}

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Binds rows for [`insert_statements`] of `chunk` rows each: a chunk's rows in the order
/// of [`INSERT_ROW`]'s parameters, then the same rows' payloads.
fn bind_rows<'q>(mut q: SqliteQuery<'q>, rows: &[InsertRow<'q>], chunk: usize) -> SqliteQuery<'q> {
    for rows in rows.chunks(chunk) {
        for r in rows {
            let d = r.d;
            q = q
                .bind(r.seq)
                .bind(d.id.as_str())
                .bind(d.webhook_id.as_str())
                .bind(d.agent_id.as_str())
                .bind(r.status.as_str())
                .bind(r.queue_seq)
                .bind(d.event.as_deref())
                .bind(d.provider_delivery_id.as_deref())
                .bind(d.verified)
                .bind(r.reason)
                .bind(d.received_at)
                .bind(r.cut.map_or(d.body.len() as i64, |c| c.size_bytes))
                .bind(r.cut.map(|c| c.sha256.as_str()));
        }
        for r in rows {
            q = q
                .bind(r.seq)
                .bind(r.d.headers.as_str())
                .bind(r.d.body.as_ref());
        }
    }
    q
}

/// Deletes all but the newest `keep` rejected requests of a webhook, payloads included
/// (by cascade): what senders that fail verification can add to the data directory stays
/// bounded per webhook however many of them there are.
async fn prune_rejected(
    conn: &mut SqliteConnection,
    webhook_id: &WebhookId,
    keep: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM deliveries WHERE webhook_id = ? AND status = 'rejected' AND seq <= (
            SELECT seq FROM deliveries WHERE webhook_id = ? AND status = 'rejected'
            ORDER BY seq DESC LIMIT 1 OFFSET ?)",
    )
    .bind(webhook_id.as_str())
    .bind(webhook_id.as_str())
    .bind(keep)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
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

/// Puts a delivery back at the end of its agent's queue, its last attempt closed in the
/// history. Without `room` in the backlog, only one already pending is: moving it adds
/// nothing.
async fn requeue(
    conn: &mut SqliteConnection,
    owner: &OwnedAgent,
    webhook_id: &WebhookId,
    id: &DeliveryId,
    queue_seq: i64,
    room: bool,
    at: i64,
) -> Result<Requeued, StoreError> {
    let was: Option<(i64, String)> = sqlx::query_as(
        "SELECT seq, status FROM deliveries WHERE id = ? AND webhook_id = ? AND agent_id = ?",
    )
    .bind(id.as_str())
    .bind(webhook_id.as_str())
    .bind(owner.id().as_str())
    .fetch_optional(&mut *conn)
    .await?;
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
    attempts::close_for_redeliver(conn, seq, at).await?;
    sqlx::query(
        "UPDATE deliveries SET status = 'queued', queue_seq = ?, reason = NULL,
             result_status = NULL, result_ms = NULL, attempt_base = attempts
         WHERE seq = ?",
    )
    .bind(queue_seq)
    .bind(seq)
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query(&format!("{PENDING_SELECT} WHERE d.id = ?"))
        .bind(id.as_str())
        .fetch_one(&mut *conn)
        .await?;
    Ok(Requeued::Queued {
        pending: Box::new(pending_from_row(&row)?),
        was_pending,
    })
}

/// More than a small delivery writes (its row, its payload, an entry in each index: a few
/// pages). A probe that fit where no delivery does would call healthy a hub that refuses
/// every delivery.
const PROBE_BYTES: i64 = 64 * 1024;

/// A small write for the delivery writer to try when its commits have been failing,
/// on its connection, inside its transaction. It rewrites the one row of
/// `writer_probe` with [`PROBE_BYTES`] of filler.
async fn probe(conn: &mut SqliteConnection, at: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO writer_probe (id, at, filler) VALUES (1, ?, zeroblob(?))
         ON CONFLICT (id) DO UPDATE SET at = excluded.at, filler = excluded.filler",
    )
    .bind(at)
    .bind(PROBE_BYTES)
    .execute(conn)
    .await?;
    Ok(())
}

/// [`BatchWriter`] on SQLite: the writer's own connection, with its transaction opened
/// and ended by hand (see `begin_batch`).
pub struct SqliteBatch {
    conn: SqliteConnection,
}

impl SqliteBatch {
    /// The writer's connection, once a database from before the dedupe table has its keys.
    pub(super) async fn open(mut conn: SqliteConnection) -> Result<Self, StoreError> {
        dedupe::backfill(&mut conn).await?;
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
        let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM deliveries")
            .fetch_one(&mut self.conn)
            .await?;
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
        self.write(&w, false).await.map(drop)
    }
}

impl BatchWriter for SqliteBatch {
    async fn max_seqs(&mut self) -> Result<(i64, i64), StoreError> {
        max_seqs(&mut self.conn).await
    }

    async fn begin(
        &mut self,
        dedupe_keys: &[(&str, &str)],
    ) -> Result<HashMap<(WebhookId, String), DeliveryId>, StoreError> {
        begin_batch(&mut self.conn, dedupe_keys).await
    }

    async fn count_pending(&mut self, agent: &AgentId) -> Result<(i64, i64), StoreError> {
        count_pending(&mut self.conn, agent).await
    }

    async fn write(
        &mut self,
        writes: &BatchWrites<'_>,
        commit: bool,
    ) -> Result<HashMap<AgentId, (u64, i64)>, StoreError> {
        write_batch(&mut self.conn, writes, commit).await
    }

    async fn prune_rejected(
        &mut self,
        webhook_id: &WebhookId,
        keep: i64,
    ) -> Result<u64, StoreError> {
        prune_rejected(&mut self.conn, webhook_id, keep).await
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
        requeue(&mut self.conn, owner, webhook_id, id, queue_seq, room, at).await
    }

    async fn end_attempts(
        &mut self,
        ends: &[(AgentId, AttemptEnd)],
    ) -> Result<Vec<Failed>, StoreError> {
        attempts::end_attempts(&mut self.conn, ends).await
    }

    async fn discard(
        &mut self,
        owner: &OwnedAgent,
        webhook_id: &WebhookId,
        id: &DeliveryId,
        at: i64,
    ) -> Result<(DiscardOutcome, i64), StoreError> {
        attempts::discard(&mut self.conn, owner, webhook_id, id, at).await
    }

    async fn count_matching(
        &mut self,
        owner: &OwnedAgent,
        webhook_id: &WebhookId,
        filter: &RedeliverFilter,
    ) -> Result<(u64, i64), StoreError> {
        attempts::count_matching(&mut self.conn, owner, webhook_id, filter).await
    }

    async fn requeue_matching(
        &mut self,
        owner: &OwnedAgent,
        webhook_id: &WebhookId,
        filter: &RedeliverFilter,
        first_queue_seq: i64,
    ) -> Result<u64, StoreError> {
        attempts::requeue_matching(&mut self.conn, owner, webhook_id, filter, first_queue_seq).await
    }

    async fn apply_retention(
        &mut self,
        cutoff: i64,
        expired_cutoff: i64,
    ) -> Result<(u64, u64), StoreError> {
        super::retention::apply_retention(&mut self.conn, cutoff, expired_cutoff).await
    }

    async fn probe(&mut self, at: i64) -> Result<(), StoreError> {
        probe(&mut self.conn, at).await
    }

    async fn commit(&mut self) -> Result<(), StoreError> {
        commit(&mut self.conn).await
    }

    async fn rollback(&mut self) {
        rollback(&mut self.conn).await
    }
}

#[cfg(test)]
mod tests {
    use serde::{ser::Error as _, Serialize, Serializer};

    use super::*;

    /// Stands for any value serde cannot encode.
    struct Unencodable;

    impl Serialize for Unencodable {
        fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(S::Error::custom("not representable"))
        }
    }

    #[test]
    fn a_value_that_cannot_be_encoded_is_an_error_not_an_empty_array() {
        match json_text("the batch's acks", &[Unencodable]) {
            Err(StoreError::Encode { what, .. }) => assert_eq!(what, "the batch's acks"),
            other => panic!("expected an encode error, got {other:?}"),
        }
    }
}
