//! Storage: the only module that speaks SQL.
//!
//! SQLite in WAL mode with `synchronous=FULL`: a commit is on disk before it returns, so a
//! delivery answered 2xx survives `kill -9` and power loss. Reads and management writes use
//! the pool; inserts into `deliveries` (and acks, sends, requeues and retention) go through
//! the single [`crate::writer::DeliveryWriter`], which commits them in groups.
//!
//! Every query that reads or changes a webhook or a delivery takes an [`agents::OwnedAgent`],
//! which only an ownership-checking query can produce, so a forgotten check does not compile.

pub mod accounts;
pub mod agents;
pub mod deliveries;
pub mod sessions;
pub mod webhooks;

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    ConnectOptions, Connection, SqliteConnection, SqlitePool,
};

use crate::datadir;

pub use accounts::Account;
pub use agents::{Agent, OwnedAgent};
pub use deliveries::{ActivityRecord, DeliveryStatus, PendingDelivery};
pub use sessions::DashboardSession;
pub use webhooks::{IngestWebhook, SealedSecrets, Webhook};

const DB_FILE: &str = "hookhub.db";
/// What SQLite adds to the database file's name for its WAL and its shared memory.
const DB_SIDE_FILES: [&str; 2] = ["-wal", "-shm"];

/// More than a small delivery writes (its row, its payload, an entry in each index: a few
/// pages). A probe that fit where no delivery does would call healthy a hub that refuses
/// every delivery.
const PROBE_BYTES: i64 = 64 * 1024;

#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    options: SqliteConnectOptions,
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir` and applies migrations.
    pub async fn open(data_dir: &Path) -> Result<Self, sqlx::Error> {
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
            // A commit that leaves the WAL over ~40 MiB (not SQLite's ~4 MiB) checkpoints
            // inside that commit. The copying is mostly done by then: `checkpoint` runs
            // beside the writer; this is what lets the WAL start over from its beginning.
            .pragma("wal_autocheckpoint", "10000")
            .disable_statement_logging();
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool, options })
    }

    /// A connection of its own, outside the pool, for the delivery writer. Its statement
    /// cache holds every shape of batch statement (`deliveries::write_batch`) at once.
    pub async fn dedicated_connection(&self) -> Result<SqliteConnection, sqlx::Error> {
        SqliteConnection::connect_with(&self.options.clone().statement_cache_capacity(256)).await
    }

    /// Copies committed pages from the WAL into the database file, as far as it can
    /// without waiting for anyone: writers go on appending meanwhile. With
    /// `synchronous=FULL` the copied pages are synced before the WAL may be reused, so this
    /// changes where data lives, never whether it is durable. Returns the WAL's frames and
    /// how many of them are now in the database file.
    pub async fn checkpoint(conn: &mut SqliteConnection) -> Result<(i64, i64), sqlx::Error> {
        let (_busy, wal_frames, copied): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(conn)
                .await?;
        Ok((wal_frames, copied))
    }

    /// A small write for the delivery writer to try when its commits have been failing,
    /// on its connection, inside its transaction. It rewrites the one row of
    /// `writer_probe` with [`PROBE_BYTES`] of filler.
    pub async fn probe(conn: &mut SqliteConnection, at: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO writer_probe (id, at, filler) VALUES (1, ?, zeroblob(?))
             ON CONFLICT (id) DO UPDATE SET at = excluded.at, filler = excluded.filler",
        )
        .bind(at)
        .bind(PROBE_BYTES)
        .execute(conn)
        .await
        .map(drop)
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
