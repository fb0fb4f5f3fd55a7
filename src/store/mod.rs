//! Storage: the only module that speaks SQL.
//!
//! What the rest of the hub uses is backend-neutral: [`Store`]'s methods take and return
//! domain types and [`StoreError`], and the delivery writer commits through the
//! [`BatchWriter`] interface, which a second backend implements beside SQLite's
//! ([`batch::SqliteBatch`]). No SQLite type crosses this module's boundary.
//!
//! SQLite in WAL mode with `synchronous=FULL`: a commit is on disk before it returns, so a
//! delivery answered 2xx survives `kill -9` and power loss. Reads and management writes use
//! the pool; inserts into `deliveries` (and acks, sends, requeues and retention) go through
//! the single [`crate::pipeline::writer::DeliveryWriter`], which commits them in groups.
//!
//! Every query that reads or changes a webhook or a delivery takes an [`agents::OwnedAgent`],
//! which only an ownership-checking query can produce, so a forgotten check does not compile.

pub mod accounts;
pub mod activity;
pub mod agents;
pub mod attempts;
pub mod batch;
pub mod dedupe;
pub mod queue;
pub mod retention;
pub mod seal;
pub mod sessions;
pub mod webhooks;

use std::{
    collections::HashMap, future::Future, path::Path, str::FromStr, sync::Arc, time::Duration,
};

use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    ConnectOptions, Connection, SqliteConnection, SqlitePool,
};

use tokio::sync::mpsc;

use crate::{
    datadir,
    domain::{
        ids::{AgentId, DeliveryId, WebhookId},
        AttemptEnd, DeliveryStatus, DiscardOutcome, Provider, RedeliverFilter,
    },
};

pub use accounts::Account;
pub use activity::{ActivityFilter, ActivityRecord, DeliveryRecord};
pub use agents::{Agent, OwnedAgent};
pub use attempts::{AttemptRecord, Failed};
pub use batch::{BatchWrites, InsertRow, Requeued, SqliteBatch};
pub use queue::PendingPage;
pub use retention::RETENTION_STEP;
pub use sessions::DashboardSession;
pub use webhooks::{IngestWebhook, Webhook};

const DB_FILE: &str = "hookhub.db";
/// What SQLite adds to the database file's name for its WAL and its shared memory.
const DB_SIDE_FILES: [&str; 2] = ["-wal", "-shm"];

/// A storage operation that failed. Its text is the backend's own and may name data: it
/// goes to the log; [`StoreError::public_reason`] is what anyone may see.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// From the delivery writer's own connection ([`batch`]).
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the data directory: {0}")]
    Io(#[from] std::io::Error),
    /// A value could not be encoded for a statement: nothing was written with a stand-in.
    #[error("encoding {what} for the database: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    /// A backup could not be made; the text says what, and where.
    #[error("{0}")]
    Backup(String),
    /// A row holds what no version of the hub writes (a status or a provider unknown).
    #[error("a stored row is unreadable: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Why a write failed, in words anyone may see (`/healthz`): SQLite's own message for
    /// its errors, which names no data, with its code, which tells more than the message
    /// ("disk I/O error" is 778, a write that failed); only the kind of an I/O error, whose
    /// text may name a path; and nothing of the rest.
    pub fn public_reason(&self) -> Arc<str> {
        match self {
            Self::Database(sqlx::Error::Database(db)) => match db.code() {
                Some(code) => Arc::from(format!("{} (SQLite code {code})", db.message())),
                None => Arc::from(db.message()),
            },
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, message)) => Arc::from(format!(
                "{} (SQLite code {})",
                message.as_deref().unwrap_or(&e.to_string()),
                e.extended_code
            )),
            Self::Database(sqlx::Error::Io(io)) | Self::Io(io) => Arc::from(io.kind().to_string()),
            _ => Arc::from("the database could not be written"),
        }
    }
}

/// Everything the delivery writer does to storage, on a connection of its own that it
/// alone uses: each batch is [`begin`](BatchWriter::begin), any of the other operations,
/// then [`write`](BatchWriter::write) with `commit` (or [`commit`](BatchWriter::commit)),
/// and [`rollback`](BatchWriter::rollback) on any error. The writer decides dedupe and
/// the backlog cap from what these return; a backend only has to apply them atomically.
pub trait BatchWriter: Send + 'static {
    /// The highest row number and queue position in use: the writer numbers after them.
    fn max_seqs(&mut self) -> impl Future<Output = Result<(i64, i64), StoreError>> + Send;

    /// Opens the batch's transaction and finds, for each `(webhook id, provider delivery
    /// id)`, the delivery that first carried it on that webhook.
    fn begin(
        &mut self,
        dedupe_keys: &[(&str, &str)],
    ) -> impl Future<Output = Result<HashMap<(WebhookId, String), DeliveryId>, StoreError>> + Send;

    /// How many deliveries `agent` has pending (queued or sent), and their bodies' bytes.
    fn count_pending(
        &mut self,
        agent: &AgentId,
    ) -> impl Future<Output = Result<(i64, i64), StoreError>> + Send;

    /// Inserts rows, marks sends and applies acks; with `commit`, ends the transaction.
    /// How many deliveries each agent's acks moved to `acked`, and their bytes.
    fn write(
        &mut self,
        writes: &BatchWrites<'_>,
        commit: bool,
    ) -> impl Future<Output = Result<HashMap<AgentId, (u64, i64)>, StoreError>> + Send;

    /// Deletes all but the newest `keep` rejected requests of a webhook.
    fn prune_rejected(
        &mut self,
        webhook_id: &WebhookId,
        keep: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Puts a delivery back at the end of its agent's queue, at `queue_seq`.
    fn requeue(
        &mut self,
        owner: &OwnedAgent,
        webhook_id: &WebhookId,
        id: &DeliveryId,
        queue_seq: i64,
        room: bool,
        at: i64,
    ) -> impl Future<Output = Result<Requeued, StoreError>> + Send;

    /// Records attempts that ended without an ack; those whose end gives up on a pending
    /// delivery make it `failed`, and are returned.
    fn end_attempts(
        &mut self,
        ends: &[(AgentId, AttemptEnd)],
    ) -> impl Future<Output = Result<Vec<Failed>, StoreError>> + Send;

    /// Gives up on a delivery at its owner's word; with the bytes that left the backlog.
    fn discard(
        &mut self,
        owner: &OwnedAgent,
        webhook_id: &WebhookId,
        id: &DeliveryId,
        at: i64,
    ) -> impl Future<Output = Result<(DiscardOutcome, i64), StoreError>> + Send;

    /// How many of a webhook's deliveries `filter` takes, and their bodies' bytes.
    fn count_matching(
        &mut self,
        owner: &OwnedAgent,
        webhook_id: &WebhookId,
        filter: &RedeliverFilter,
    ) -> impl Future<Output = Result<(u64, i64), StoreError>> + Send;

    /// Queues again what `filter` takes, in receipt order, from `first_queue_seq` on.
    fn requeue_matching(
        &mut self,
        owner: &OwnedAgent,
        webhook_id: &WebhookId,
        filter: &RedeliverFilter,
        first_queue_seq: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// One step of retention: (expired, pruned).
    fn apply_retention(
        &mut self,
        cutoff: i64,
        expired_cutoff: i64,
    ) -> impl Future<Output = Result<(u64, u64), StoreError>> + Send;

    /// A small write of filler, for a writer whose commits have been failing to find out
    /// whether writing works again.
    fn probe(&mut self, at: i64) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn commit(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Ends the transaction, keeping nothing; harmless when none is open.
    fn rollback(&mut self) -> impl Future<Output = ()> + Send;
}

/// `value` as JSON text for a statement. A value that cannot be encoded fails the write:
/// a stand-in such as `[]` would silently drop the acks or the dedupe keys it stood for.
fn json_text(what: &'static str, value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode { what, source })
}

/// A provider read from a row; the column's CHECK constraint admits no other.
fn stored_provider(name: &str) -> Result<Provider, StoreError> {
    Provider::parse(name).ok_or_else(|| StoreError::Corrupt(format!("unknown provider {name:?}")))
}

/// A delivery status read from a row; the column's CHECK constraint admits no other.
fn stored_status(name: &str) -> Result<DeliveryStatus, StoreError> {
    DeliveryStatus::parse(name)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery status {name:?}")))
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    options: SqliteConnectOptions,
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir` and applies migrations.
    /// Whether `data_dir` holds a hub database: the commands that run beside a server
    /// refuse to make one by accident (a mistyped `--data-dir`).
    pub fn exists_in(data_dir: &Path) -> bool {
        data_dir.join(DB_FILE).is_file()
    }

    /// Writes a consistent copy of `data_dir`'s database to `to`, which must not exist,
    /// while a hub may be writing to it: `VACUUM INTO` reads one snapshot, so the copy
    /// holds every commit made before it began and none after. The database is opened
    /// read-only and not migrated: a newer binary backing up an older hub's directory
    /// changes nothing in it. The copy is private (0600), synced, and appears under its
    /// name only once it is whole. Its size in bytes.
    pub async fn backup(data_dir: &Path, to: &Path) -> Result<u64, StoreError> {
        let failed = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
            StoreError::Backup(format!("{what} {}: {e}", path.display()))
        };
        let mut partial = to.as_os_str().to_owned();
        partial.push(".partial");
        let partial = std::path::PathBuf::from(partial);
        // SQLite would create the file 0644; an empty file of our own is what it fills.
        if let Err(e) = datadir::private_file_options()
            .write(true)
            .create_new(true)
            .open(&partial)
        {
            return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                StoreError::Backup(format!(
                    "{} exists: left by a backup that did not finish? Remove it, then try again",
                    partial.display()
                ))
            } else {
                failed("cannot create", &partial, &e)
            });
        }
        let copied = async {
            let options = SqliteConnectOptions::new()
                .filename(data_dir.join(DB_FILE))
                .read_only(true)
                .busy_timeout(Duration::from_secs(10))
                .disable_statement_logging();
            let mut conn = SqliteConnection::connect_with(&options).await?;
            sqlx::query("VACUUM INTO ?")
                .bind(partial.to_string_lossy().into_owned())
                .execute(&mut conn)
                .await?;
            conn.close().await?;
            Ok::<_, sqlx::Error>(())
        }
        .await;
        let finish = || -> Result<u64, StoreError> {
            let file =
                std::fs::File::open(&partial).map_err(|e| failed("reading", &partial, &e))?;
            file.sync_all()
                .map_err(|e| failed("syncing", &partial, &e))?;
            let size = file
                .metadata()
                .map_err(|e| failed("reading", &partial, &e))?
                .len();
            if to.exists() {
                return Err(StoreError::Backup(format!(
                    "{} appeared while the copy was made; the copy is left in {}",
                    to.display(),
                    partial.display()
                )));
            }
            std::fs::rename(&partial, to).map_err(|e| failed("renaming to", to, &e))?;
            if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| failed("syncing", dir, &e))?;
            }
            Ok(size)
        };
        let result = match copied {
            Ok(()) => finish(),
            Err(e) => Err(StoreError::Backup(format!(
                "copying {}: {e}",
                data_dir.join(DB_FILE).display()
            ))),
        };
        if result.is_err() && !to.exists() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        datadir::create_private_dir(data_dir)?;
        let db = data_dir.join(DB_FILE);
        // SQLite gives the WAL and shared memory files it creates the database file's
        // mode, so a private database file keeps them private; SQLite itself would
        // create it 0644. Side files a crash left behind are not recreated: tighten them.
        datadir::create_private_file(&db)?;
        for suffix in DB_SIDE_FILES {
            let mut side = db.clone().into_os_string();
            side.push(suffix);
            datadir::tighten(Path::new(&side))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(&db)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // The CLI writes to the same file while a server runs; wait rather than fail.
            .busy_timeout(Duration::from_secs(10))
            // Set before anything else touches a new file; an older file is converted by
            // `convert_page_size` below. See PAGE_SIZE.
            .page_size(PAGE_SIZE)
            // A commit that leaves the WAL over ~40 MiB (not SQLite's ~4 MiB) checkpoints
            // inside that commit. The copying is mostly done by then: `checkpoint` runs
            // beside the writer; this is what lets the WAL start over from its beginning.
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
            .disable_statement_logging();
        convert_page_size(&options).await?;
        migrate(&options).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await?;
        Ok(Self { pool, options })
    }

    /// The delivery writer's connection, outside the pool, once a database from before
    /// the dedupe table has its keys ([`dedupe::backfill`]).
    pub async fn batch_writer(&self) -> Result<SqliteBatch, StoreError> {
        let mut conn = self.dedicated_connection(4).await?;
        dedupe::backfill(&mut conn).await?;
        conn.close().await?;
        SqliteBatch::open(self.options.get_filename())
    }

    async fn dedicated_connection(
        &self,
        statements: usize,
    ) -> Result<SqliteConnection, StoreError> {
        let options = self.options.clone().statement_cache_capacity(statements);
        Ok(SqliteConnection::connect_with(&options).await?)
    }

    /// Starts the backend's housekeeping beside the writer, woken by each commit (a send
    /// on the returned channel) and ended when the channel closes. For SQLite: copying
    /// committed pages from the WAL into the database file, as far as it can without
    /// waiting for anyone, while writers go on appending. Left to the writer, that copy
    /// (tens of MiB every couple of seconds at full load) happened inside a commit and held
    /// up every delivery waiting behind it. With `synchronous=FULL` the copied pages are
    /// synced before the WAL may be reused, so this changes where data lives, never
    /// whether it is durable.
    pub async fn start_housekeeping(&self) -> Result<mpsc::Sender<()>, StoreError> {
        let conn = self.dedicated_connection(4).await?;
        let (committed, commits) = mpsc::channel(1);
        tokio::spawn(checkpoints(conn, commits));
        Ok(committed)
    }

    /// The pool itself, for tests that inspect the database directly; nothing in the hub
    /// goes around the methods above.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// SQLite's page, the unit of every write: a commit appends each page it changed, whole, to
/// the WAL, and the checkpoint copies it again. A delivery's commit changes the end of
/// every index it is in (half a dozen b-trees) plus its payload, so most of what it wrote
/// with SQLite's default of 4 KiB was the unchanged rest of those pages: 15.5 KB for a
/// 1 KiB delivery at full load and ~39 KB at one commit per delivery (BENCHMARKS.md). With
/// 1 KiB pages the same commits write a third to a half of that; a body over ~1 KiB
/// takes an overflow page more to read, which costs less than it saves.
const PAGE_SIZE: u32 = 1024;
/// ~40 MiB of WAL, in pages of [`PAGE_SIZE`].
const WAL_AUTOCHECKPOINT_PAGES: &str = "40000";

/// Applies the migrations, on a connection of their own with foreign keys off: a
/// migration that rebuilds a table (SQLite's only way to change a CHECK) drops the old
/// one, and with foreign keys on that drop would first delete every row that references
/// it (the payloads, by cascade).
async fn migrate(options: &SqliteConnectOptions) -> Result<(), StoreError> {
    let mut conn = SqliteConnection::connect_with(&options.clone().foreign_keys(false)).await?;
    sqlx::migrate!("./migrations").run(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// Rewrites a database made with another page size (every hub before [`PAGE_SIZE`] was
/// chosen made 4 KiB pages) into pages of [`PAGE_SIZE`], once, before anything else opens
/// it. SQLite changes a WAL database's page size only by `VACUUM` outside WAL mode; in
/// rollback-journal mode that `VACUUM` is one transaction, so a hub killed in the middle
/// leaves the old file, whole, to be converted at the next start. It needs room for a
/// second copy of the database for as long as it runs.
async fn convert_page_size(options: &SqliteConnectOptions) -> Result<(), StoreError> {
    let mut conn = SqliteConnection::connect_with(options).await?;
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(&mut conn)
        .await?;
    if page_size != i64::from(PAGE_SIZE) {
        let started = std::time::Instant::now();
        tracing::info!(
            from = page_size,
            to = PAGE_SIZE,
            "rewriting the database with smaller pages, once; a large database takes a while"
        );
        sqlx::query("PRAGMA journal_mode = DELETE")
            .execute(&mut conn)
            .await?;
        sqlx::query(&format!("PRAGMA page_size = {PAGE_SIZE}"))
            .execute(&mut conn)
            .await?;
        sqlx::query("VACUUM").execute(&mut conn).await?;
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&mut conn)
            .await?;
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "the database has its new page size"
        );
    }
    conn.close().await?;
    Ok(())
}

/// How long the checkpointer lets commits gather before it copies them: at most ten
/// checkpoints a second, none while nothing is written.
const CHECKPOINT_AFTER: Duration = Duration::from_millis(100);

/// Checkpoints the WAL a little after commits, until the writer stops. A failure is
/// logged and retried after the next commit: the WAL only grows meanwhile, and the
/// writer's own checkpoint (`wal_autocheckpoint`) still bounds it.
async fn checkpoints(mut conn: SqliteConnection, mut commits: mpsc::Receiver<()>) {
    while commits.recv().await.is_some() {
        tokio::time::sleep(CHECKPOINT_AFTER).await;
        let checkpoint: Result<(i64, i64, i64), _> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&mut conn)
                .await;
        match checkpoint {
            Ok((_busy, wal_frames, copied)) => {
                tracing::debug!(wal_frames, copied, "WAL checkpoint")
            }
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
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

    #[test]
    fn a_status_or_provider_no_hub_writes_is_an_error_not_a_default() {
        assert_eq!(stored_status("acked").unwrap(), DeliveryStatus::Acked);
        assert!(matches!(
            stored_status("Queued"),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(stored_provider("github").unwrap(), Provider::Github);
        assert!(matches!(
            stored_provider("gitlab"),
            Err(StoreError::Corrupt(_))
        ));
    }
}
