//! Deliveries: the durable queue of record and the activity history.
//!
//! The functions that take a `&mut SqliteConnection` are for the delivery writer alone
//! (inside its group-commit transaction); the `Store` methods are reads.

use bytes::Bytes;
use sqlx::{sqlite::SqliteRow, Row, SqliteConnection};

use std::{collections::HashMap, sync::Arc};

use super::{OwnedAgent, SealedSecrets, Store};
use crate::metrics::BacklogSnapshot;
use crate::{
    ids::{AgentId, DeliveryId, WebhookId},
    providers::Provider,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    Queued,
    Sent,
    Acked,
    Rejected,
    Duplicate,
    Expired,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 6] = [
        Self::Queued,
        Self::Sent,
        Self::Acked,
        Self::Rejected,
        Self::Duplicate,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Acked => "acked",
            Self::Rejected => "rejected",
            Self::Duplicate => "duplicate",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A delivery received on a webhook, before it is committed.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub agent_id: AgentId,
    pub provider: Provider,
    pub event: Option<String>,
    pub provider_delivery_id: Option<String>,
    pub verified: bool,
    pub received_at: i64,
    /// A JSON object of header name to value.
    pub headers: String,
    pub body: Bytes,
    /// The webhook's secrets, sealed, for signing the frame that carries it.
    pub secrets: Arc<SealedSecrets>,
}

/// A delivery waiting for its agent's ack: what an agent session sends.
#[derive(Clone, Debug)]
pub struct PendingDelivery {
    /// Position in the agent's queue; sessions send in this order.
    pub queue_seq: i64,
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub agent_id: AgentId,
    pub provider: Provider,
    pub event: Option<String>,
    pub received_at: i64,
    pub verified: bool,
    /// Sends made before this copy was loaded.
    pub attempts: i64,
    pub headers: String,
    pub body: Bytes,
    pub secrets: Arc<SealedSecrets>,
}

impl PendingDelivery {
    pub fn from_new(d: NewDelivery, queue_seq: i64) -> Self {
        Self {
            queue_seq,
            id: d.id,
            webhook_id: d.webhook_id,
            agent_id: d.agent_id,
            provider: d.provider,
            event: d.event,
            received_at: d.received_at,
            verified: d.verified,
            attempts: 0,
            headers: d.headers,
            body: d.body,
            secrets: d.secrets,
        }
    }
}

/// One read of an agent's queue.
pub struct PendingPage {
    pub deliveries: Vec<PendingDelivery>,
    /// Nothing was left out: the queue held no more after this page when it was read.
    pub is_short: bool,
}

/// A delivery as the activity list shows it.
#[derive(Clone, Debug)]
pub struct ActivityRecord {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub status: DeliveryStatus,
    pub event: Option<String>,
    pub reason: Option<String>,
    pub received_at: i64,
    pub sent_at: Option<i64>,
    pub acked_at: Option<i64>,
    pub attempts: i64,
    pub size_bytes: i64,
    pub verified: bool,
    /// Of a rejected request's whole body, of which only the start is kept.
    pub body_sha256: Option<String>,
}

const ACTIVITY_COLUMNS: &str =
    "id, webhook_id, status, event, reason, received_at, sent_at, acked_at, attempts, size_bytes, verified, body_sha256";

fn activity_from_row(r: &SqliteRow) -> ActivityRecord {
    let status: String = r.get("status");
    ActivityRecord {
        id: DeliveryId::from_trusted(r.get("id")),
        webhook_id: WebhookId::from_trusted(r.get("webhook_id")),
        status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Queued),
        event: r.get("event"),
        reason: r.get("reason"),
        received_at: r.get("received_at"),
        sent_at: r.get("sent_at"),
        acked_at: r.get("acked_at"),
        attempts: r.get("attempts"),
        size_bytes: r.get("size_bytes"),
        verified: r.get::<i64, _>("verified") != 0,
        body_sha256: r.get("body_sha256"),
    }
}

const PENDING_SELECT: &str =
    "SELECT d.queue_seq, d.id, d.webhook_id, d.agent_id, w.provider, d.event,
        d.received_at, d.verified, d.attempts, p.headers, p.body,
        w.signing_secret, w.previous_secret, w.previous_secret_until, w.provider_secret
    FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
        JOIN delivery_payloads p ON p.seq = d.seq";

fn pending_from_row(r: &SqliteRow) -> PendingDelivery {
    let provider: String = r.get("provider");
    PendingDelivery {
        queue_seq: r.get("queue_seq"),
        id: DeliveryId::from_trusted(r.get("id")),
        webhook_id: WebhookId::from_trusted(r.get("webhook_id")),
        agent_id: AgentId::from_trusted(r.get("agent_id")),
        provider: Provider::parse(&provider).unwrap_or(Provider::Generic),
        event: r.get("event"),
        received_at: r.get("received_at"),
        verified: r.get::<i64, _>("verified") != 0,
        attempts: r.get("attempts"),
        headers: r.get("headers"),
        body: Bytes::from(r.get::<Vec<u8>, _>("body")),
        secrets: Arc::new(SealedSecrets {
            signing: r.get("signing_secret"),
            previous: r.get("previous_secret"),
            previous_until: r.get("previous_secret_until"),
            provider: r.get("provider_secret"),
        }),
    }
}

impl Store {
    /// The next page of an agent's queue after `after_queue_seq`, oldest first: at most
    /// `limit` deliveries and at most `max_bytes` of bodies, except that with
    /// `first_always` the first delivery comes however large it is. The page is cut by
    /// the sizes in the queue's rows, so a body that would not fit is never read.
    pub async fn pending_page(
        &self,
        agent_id: &AgentId,
        after_queue_seq: i64,
        limit: u32,
        max_bytes: usize,
        first_always: bool,
    ) -> Result<PendingPage, sqlx::Error> {
        // The next `limit` of the queue by its index alone, each with the bytes up to and
        // including it; only those within `max_bytes` are joined to their payloads.
        let rows = sqlx::query(
            "SELECT d.queue_seq, d.id, d.webhook_id, d.agent_id, w.provider, d.event,
                d.received_at, d.verified, d.attempts, p.headers, p.body,
                w.signing_secret, w.previous_secret, w.previous_secret_until, w.provider_secret,
                page.taken
            FROM (SELECT seq, size_bytes,
                    SUM(size_bytes) OVER (ORDER BY queue_seq ROWS UNBOUNDED PRECEDING) AS running,
                    COUNT(*) OVER () AS taken
                  FROM (SELECT seq, queue_seq, size_bytes FROM deliveries
                        WHERE agent_id = ? AND status IN ('queued', 'sent') AND queue_seq > ?
                        ORDER BY queue_seq LIMIT ?)) AS page
            JOIN deliveries d ON d.seq = page.seq
            JOIN webhooks w ON w.id = d.webhook_id
            JOIN delivery_payloads p ON p.seq = d.seq
            WHERE page.running <= ? OR (? AND page.running = page.size_bytes)
            ORDER BY d.queue_seq",
        )
        .bind(agent_id.as_str())
        .bind(after_queue_seq)
        .bind(limit)
        .bind(i64::try_from(max_bytes).unwrap_or(i64::MAX))
        .bind(first_always)
        .fetch_all(&self.pool)
        .await?;
        let taken = match rows.first() {
            Some(row) => usize::try_from(row.try_get::<i64, _>("taken")?).unwrap_or(0),
            // Nothing fit, or nothing was there: only the second is the end of the queue.
            None => {
                let more: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM deliveries
                     WHERE agent_id = ? AND status IN ('queued', 'sent') AND queue_seq > ?)",
                )
                .bind(agent_id.as_str())
                .bind(after_queue_seq)
                .fetch_one(&self.pool)
                .await?;
                return Ok(PendingPage {
                    deliveries: Vec::new(),
                    is_short: !more,
                });
            }
        };
        let cut = rows.len() < taken;
        Ok(PendingPage {
            deliveries: rows.iter().map(pending_from_row).collect(),
            is_short: !cut && taken < limit as usize,
        })
    }

    /// A webhook's activity, newest first; `before` is a delivery id from a previous page.
    pub async fn list_deliveries(
        &self,
        owner: &OwnedAgent,
        webhook_id: &WebhookId,
        status: Option<DeliveryStatus>,
        before: Option<&DeliveryId>,
        limit: u32,
    ) -> Result<Vec<ActivityRecord>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {ACTIVITY_COLUMNS} FROM deliveries
             WHERE webhook_id = ?1 AND agent_id = ?2
               AND (?3 IS NULL OR status = ?3)
               AND (?4 IS NULL OR seq < (SELECT seq FROM deliveries WHERE id = ?4 AND webhook_id = ?1))
             ORDER BY seq DESC LIMIT ?5"
        ))
        .bind(webhook_id.as_str())
        .bind(owner.id().as_str())
        .bind(status.map(DeliveryStatus::as_str))
        .bind(before.map(DeliveryId::as_str))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(activity_from_row).collect())
    }

    /// One delivery with its headers and body.
    pub async fn get_delivery(
        &self,
        owner: &OwnedAgent,
        webhook_id: &WebhookId,
        id: &DeliveryId,
    ) -> Result<Option<(ActivityRecord, String, Vec<u8>)>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {ACTIVITY_COLUMNS}, p.headers, p.body
             FROM deliveries JOIN delivery_payloads p USING (seq)
             WHERE id = ? AND webhook_id = ? AND agent_id = ?"
        ))
        .bind(id.as_str())
        .bind(webhook_id.as_str())
        .bind(owner.id().as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (activity_from_row(&r), r.get("headers"), r.get("body"))))
    }

    /// Queued or sent, not yet acked.
    pub async fn backlog_depth(&self, agent_id: &AgentId) -> Result<i64, sqlx::Error> {
        let (count, _bytes) = count_pending(&mut *self.pool.acquire().await?, agent_id).await?;
        Ok(count)
    }
}

// ---- The delivery writer's statements -------------------------------------------------

/// The highest `seq` and `queue_seq` so far: the writer numbers new rows after them.
pub async fn max_seqs(conn: &mut SqliteConnection) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as("SELECT COALESCE(MAX(seq), 0), COALESCE(MAX(queue_seq), 0) FROM deliveries")
        .fetch_one(conn)
        .await
}

/// How many deliveries an agent has pending (queued or sent), and their bodies' bytes.
pub async fn count_pending(
    conn: &mut SqliteConnection,
    agent_id: &AgentId,
) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*), COALESCE(SUM(size_bytes), 0) FROM deliveries
         WHERE agent_id = ? AND status IN ('queued', 'sent')",
    )
    .bind(agent_id.as_str())
    .fetch_one(conn)
    .await
}

/// Opens the writer's transaction and, in the same round trip to SQLite's thread, finds
/// for each `(webhook id, provider delivery id)` the delivery that first carried it on
/// that webhook, if any.
///
/// The writer owns the transaction by hand (`BEGIN` here, `COMMIT` at the end of
/// [`write_batch`], [`rollback`] on any error) rather than through `sqlx::Transaction`,
/// because each statement sent on its own is a hand-off to the connection's thread and
/// back, and at thousands of deliveries a second those hand-offs, not SQLite, were most of
/// a commit's time.
pub async fn begin_batch(
    conn: &mut SqliteConnection,
    keys: &[(&str, &str)],
) -> Result<HashMap<(WebhookId, String), DeliveryId>, sqlx::Error> {
    let pairs = serde_json::to_string(keys).unwrap_or_else(|_| "[]".to_owned());
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "BEGIN IMMEDIATE;
         SELECT d.webhook_id, d.provider_delivery_id, d.id
         FROM json_each(?) j
         JOIN deliveries d ON d.webhook_id = json_extract(j.value, '$[0]')
             AND d.provider_delivery_id = json_extract(j.value, '$[1]')
             AND d.provider_delivery_id IS NOT NULL
         WHERE d.status NOT IN ('rejected', 'duplicate')
         ORDER BY d.seq",
    )
    .bind(pairs)
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
pub async fn commit(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::query("COMMIT").execute(conn).await.map(drop)
}

/// Ends a transaction opened by [`begin_batch`] without keeping anything. Harmless when
/// none is open (a failed `COMMIT` may or may not have ended it).
pub async fn rollback(conn: &mut SqliteConnection) {
    if let Err(e) = sqlx::query("ROLLBACK").execute(conn).await {
        tracing::debug!(error = %e, "rollback after a failed batch");
    }
}

/// A row for [`write_batch`].
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

/// What a stored body that was cut short still says about the whole one.
#[derive(Debug, Clone)]
pub struct BodyCut {
    pub size_bytes: i64,
    /// Hex SHA-256 of the whole body.
    pub sha256: String,
}

/// What a batch writes in bulk: new rows, send markers and acks.
pub struct BatchWrites<'a> {
    /// In receipt order.
    pub rows: &'a [InsertRow<'a>],
    /// One entry per send, with the agent it went to: a delivery sent twice before the
    /// commit counts two attempts.
    pub sent: &'a [(AgentId, DeliveryId)],
    /// Each ack with the agent that sent it; an agent acks only its own deliveries.
    pub acks: &'a [(AgentId, DeliveryId)],
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
const MARK_SENT: &str =
    "UPDATE deliveries SET status = 'sent', sent_at = ?, attempts = attempts + ?
    WHERE id IN (SELECT value FROM json_each(?)) AND status IN ('queued', 'sent')";
/// Every ack of the batch, whichever agent's, in one statement: `[id, agent, sends]`,
/// where `sends` counts the sends of this same batch, recorded here instead of by
/// [`MARK_SENT`] so that a delivery sent and acked between two commits (most of them, in
/// a backlog flush) is written once. Each ack reaches only its own agent's delivery.
const ACK: &str = "UPDATE deliveries SET status = 'acked', acked_at = ?,
        sent_at = CASE WHEN a.sends > 0 THEN ? ELSE sent_at END,
        attempts = attempts + a.sends
    FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS agent_id,
                 json_extract(value, '$[2]') AS sends
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

/// Applies a batch's rows, sends and acks, and with `commit` ends the transaction, in two
/// round trips: the 32-row inserts, then everything else. Each statement text depends only
/// on how many inserts of each size it holds, so the connection's statement cache keeps
/// them all prepared (about a hundred texts). Returns how many deliveries each agent's
/// acks moved from pending to `acked`, and their bodies' bytes. (A delivery sent twice
/// since the last commit takes a round trip more: rare.)
pub async fn write_batch(
    conn: &mut SqliteConnection,
    w: &BatchWrites<'_>,
    commit: bool,
) -> Result<HashMap<AgentId, (u64, i64)>, sqlx::Error> {
    let [big, mid, _] = INSERT_SIZES;
    let (bulk, rest) = w.rows.split_at(w.rows.len() / big * big);
    if !bulk.is_empty() {
        let sql = insert_statements(bulk.len() / big, big);
        bind_rows(sqlx::query(&sql), bulk, big)
            .execute(&mut *conn)
            .await?;
    }

    let mut sends: HashMap<&str, (&str, i64)> = HashMap::new();
    for (agent, id) in w.sent {
        sends.entry(id.as_str()).or_insert((agent.as_str(), 0)).1 += 1;
    }
    // Each ack once, taking over the sends of its delivery made to the same agent.
    let mut acks: Vec<(&str, &str, i64)> = Vec::with_capacity(w.acks.len());
    let mut seen = std::collections::HashSet::new();
    for (agent, id) in w.acks {
        let (id, agent) = (id.as_str(), agent.as_str());
        if !seen.insert((id, agent)) {
            continue;
        }
        let sends_now = match sends.get(id) {
            Some(&(to, n)) if to == agent => {
                sends.remove(id);
                n
            }
            _ => 0,
        };
        acks.push((id, agent, sends_now));
    }
    // A delivery sent more than once since the last commit is rare: a statement of its own
    // per count keeps the common case (one send each) in the last round trip.
    let mut by_count: std::collections::BTreeMap<i64, Vec<&str>> = Default::default();
    for (id, (_, n)) in sends {
        by_count.entry(n).or_default().push(id);
    }
    let sent_once = by_count.remove(&1).unwrap_or_default();
    for (n, ids) in by_count {
        sqlx::query(MARK_SENT)
            .bind(w.at)
            .bind(n)
            .bind(id_array(ids.into_iter()))
            .execute(&mut *conn)
            .await?;
    }

    let (mids, ones) = (rest.len() / mid, rest.len() % mid);
    let mut sql = insert_statements(mids, mid);
    sql.push_str(&insert_statements(ones, 1));
    sql.push_str(MARK_SENT);
    sql.push_str(";\n");
    sql.push_str(ACKS_TAKING_EFFECT);
    sql.push_str(";\n");
    sql.push_str(ACK);
    if commit {
        sql.push_str(";\nCOMMIT");
    }
    let acks = serde_json::to_string(&acks).unwrap_or_else(|_| "[]".to_owned());
    let (mid_rows, one_rows) = rest.split_at(mids * mid);
    let q = bind_rows(sqlx::query(&sql), mid_rows, mid);
    let acked_by = bind_rows(q, one_rows, 1)
        .bind(w.at)
        .bind(1_i64)
        .bind(id_array(sent_once.into_iter()))
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

/// Inserts one row inside the caller's transaction: for tests that seed a store directly.
pub async fn insert(
    conn: &mut SqliteConnection,
    d: &NewDelivery,
    status: DeliveryStatus,
    queue_seq: Option<i64>,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM deliveries")
        .fetch_one(&mut *conn)
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
        at: 0,
    };
    write_batch(conn, &w, false).await.map(drop)
}

/// Deletes all but the newest `keep` rejected requests of a webhook, payloads included
/// (by cascade): what senders that fail verification can add to the data directory stays
/// bounded per webhook however many of them there are.
pub async fn prune_rejected(
    conn: &mut SqliteConnection,
    webhook_id: &WebhookId,
    keep: i64,
) -> Result<u64, sqlx::Error> {
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

/// A JSON array of ids, bound as one parameter and read with `json_each`: one statement
/// text for any number of ids, so it is prepared once and cached.
fn id_array<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let ids: Vec<&str> = ids.collect();
    serde_json::to_string(&ids).unwrap_or_else(|_| "[]".to_owned())
}

/// What [`requeue`] did.
pub enum Requeued {
    Queued {
        pending: PendingDelivery,
        /// It was pending already, so the backlog did not grow.
        was_pending: bool,
    },
    /// It is not pending, and there was no `room` for it.
    NoRoom,
    /// Not the owner's, or never for the agent (rejected, duplicate).
    NotFound,
}

/// Puts a delivery back at the end of its agent's queue. Without `room` in the backlog,
/// only one already pending is: moving it adds nothing.
pub async fn requeue(
    conn: &mut SqliteConnection,
    owner: &OwnedAgent,
    webhook_id: &WebhookId,
    id: &DeliveryId,
    queue_seq: i64,
    room: bool,
) -> Result<Requeued, sqlx::Error> {
    let was: Option<String> = sqlx::query_scalar(
        "SELECT status FROM deliveries WHERE id = ? AND webhook_id = ? AND agent_id = ?",
    )
    .bind(id.as_str())
    .bind(webhook_id.as_str())
    .bind(owner.id().as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(was) = was.as_deref().and_then(DeliveryStatus::parse) else {
        return Ok(Requeued::NotFound);
    };
    if matches!(was, DeliveryStatus::Rejected | DeliveryStatus::Duplicate) {
        return Ok(Requeued::NotFound);
    }
    let was_pending = matches!(was, DeliveryStatus::Queued | DeliveryStatus::Sent);
    if !room && !was_pending {
        return Ok(Requeued::NoRoom);
    }
    sqlx::query("UPDATE deliveries SET status = 'queued', queue_seq = ? WHERE id = ?")
        .bind(queue_seq)
        .bind(id.as_str())
        .execute(&mut *conn)
        .await?;
    let row = sqlx::query(&format!("{PENDING_SELECT} WHERE d.id = ?"))
        .bind(id.as_str())
        .fetch_one(&mut *conn)
        .await?;
    Ok(Requeued::Queued {
        pending: pending_from_row(&row),
        was_pending,
    })
}

/// Most rows one retention step changes, so that a large sweep is many short
/// transactions between which ingest commits, not one that holds the writer for seconds.
pub const RETENTION_STEP: u64 = 5_000;

/// Applies one step of retention: unacked deliveries older than `cutoff` become `expired`;
/// finished ones older than it are deleted, and expired ones a retention period later. At
/// most [`RETENTION_STEP`] rows of each; a count equal to it means there may be more.
pub async fn apply_retention(
    conn: &mut SqliteConnection,
    cutoff: i64,
    expired_cutoff: i64,
) -> Result<(u64, u64), sqlx::Error> {
    let expired = sqlx::query(
        "UPDATE deliveries SET status = 'expired' WHERE seq IN (
             SELECT seq FROM deliveries
             WHERE received_at < ? AND status IN ('queued', 'sent') LIMIT ?)",
    )
    .bind(cutoff)
    .bind(RETENTION_STEP as i64)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let pruned = sqlx::query(
        "DELETE FROM deliveries WHERE seq IN (
             SELECT seq FROM deliveries
             WHERE (received_at < ? AND status IN ('acked', 'rejected', 'duplicate'))
                OR (received_at < ? AND status = 'expired')
             LIMIT ?)",
    )
    .bind(cutoff)
    .bind(expired_cutoff)
    .bind(RETENTION_STEP as i64)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok((expired, pruned))
}

impl Store {
    /// Pending deliveries of every agent, and the receipt time of the oldest: read when
    /// `/metrics` is scraped. Both come from the pending index, so the cost grows with the
    /// backlog, not with the history.
    pub async fn backlog_snapshot(&self) -> Result<BacklogSnapshot, sqlx::Error> {
        let (depth, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), min(received_at) FROM deliveries
             WHERE status IN ('queued', 'sent')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(BacklogSnapshot {
            depth,
            oldest_received_at: oldest,
        })
    }
}
