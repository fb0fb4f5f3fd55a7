//! Building and running the application: storage, actors, the delivery writer, and the
//! HTTP server on a listener bound here, so that tests can ask for port 0 and learn the
//! port they got.

use std::{
    fs::{File, TryLockError},
    future::Future,
    io,
    net::TcpListener,
    path::Path,
    sync::Arc,
};

use actix::Actor;
use actix_web::{
    middleware::{from_fn, Condition},
    web, App, HttpResponse, HttpServer,
};
use tokio_util::sync::CancellationToken;

use crate::{
    admission::{connection_budget, open_file_limit, BodySlots, ConnectionsPerIp},
    config::Config,
    crypto::{self, CryptoError, MasterKey},
    datadir,
    domain::BacklogCap,
    error::ApiError,
    http::{
        self,
        middleware::{self, AdminListener},
        openapi::OpenApiJson,
    },
    mcp,
    metrics::Metrics,
    pipeline::{leases::Leases, registry::CloseAll, retention, writer::DeliveryWriter, Registry},
    ratelimit::RateLimiter,
    service::{accounts, views::CreatedAccount},
    state::Hub,
    store::{Store, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Database(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: io::Error },
    #[error("creating the first owner account: {0}")]
    FirstOwner(ApiError),
    #[error("invalid settings: {0}")]
    Config(String),
    #[error("another hookhub is serving the data directory {0}; stop it first, or give this one a --data-dir of its own")]
    DataDirInUse(String),
    #[error("cannot lock the data directory: {0}")]
    DataDirLock(io::Error),
    #[error("data directory: {0}")]
    DataDir(io::Error),
    #[error("this data directory was sealed with another master key; {hint}. Without the key it was sealed with, none of its signing or provider secrets can be opened")]
    WrongMasterKey { hint: String },
    #[error("serializing the OpenAPI document: {0}")]
    OpenApi(serde_json::Error),
}

pub struct Application {
    port: u16,
    admin_addr: Option<std::net::SocketAddr>,
    server: actix_web::dev::Server,
    hub: Hub,
    first_owner: Option<CreatedAccount>,
    /// Held for as long as the application lives.
    _data_dir_lock: File,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        if config.client_timeout <= config.heartbeat {
            // Every socket would be dropped between two pings.
            return Err(StartupError::Config(
                "--client-timeout must be longer than --heartbeat".to_owned(),
            ));
        }
        let data_dir_lock = lock_data_dir(&config.data_dir)?;
        let store = Store::open(&config.data_dir).await?;
        let key = open_master_key(&store, &config).await?;
        // A newcomer needs something to sign in with.
        let first_owner = if store.count_accounts().await? == 0 {
            Some(
                accounts::create_account(&store, "owner")
                    .await
                    .map_err(StartupError::FirstOwner)?,
            )
        } else {
            None
        };
        let metrics = Arc::new(Metrics::new());
        let registry = Registry::new(metrics.clone()).start();
        let writer = DeliveryWriter::start(
            &store,
            registry.clone(),
            BacklogCap {
                count: i64::try_from(config.backlog_cap).unwrap_or(i64::MAX),
                bytes: i64::try_from(config.backlog_bytes).unwrap_or(i64::MAX),
            },
            metrics.clone(),
        )
        .await?;

        let listen_addr = config.listen.clone();
        let listen_err = move |source| StartupError::Listen {
            addr: listen_addr.clone(),
            source,
        };
        let listener = TcpListener::bind(&config.listen).map_err(&listen_err)?;
        let local = listener.local_addr().map_err(&listen_err)?;
        let admin = match &config.admin_listen {
            Some(addr) => {
                let admin_err = |source| StartupError::Listen {
                    addr: addr.clone(),
                    source,
                };
                let listener = TcpListener::bind(addr).map_err(admin_err)?;
                let bound = listener.local_addr().map_err(admin_err)?;
                Some((listener, bound))
            }
            None => None,
        };
        let admin_data = admin
            .as_ref()
            .map(|(_, bound)| web::Data::new(AdminListener(*bound)));
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{local}"));
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let connections = connection_budget(open_file_limit(), workers);
        // Half the connections may be reading a body; the other half stay for everyone
        // else (agents, the API, health checks).
        let most_bodies = connections.map_or(4096, |per_worker| (per_worker * workers / 2).max(1));
        let body_slots = BodySlots::new(
            config.max_bodies_per_ip,
            most_bodies,
            config.max_body_memory.max(config.max_body_bytes),
        );
        let hub = Hub {
            store,
            writer,
            registry,
            leases: Arc::new(Leases::new(config.ack_timeout)),
            key,
            public_url: Arc::from(public_url.trim_end_matches('/')),
            config: Arc::new(config),
            shutdown: CancellationToken::new(),
            metrics,
            webhooks: Arc::default(),
            // Ten a second per webhook, a hundred at once: plenty to debug a secret.
            rejections: Arc::new(RateLimiter::new(10.0, 100)),
            body_slots,
        };

        let data = web::Data::new(hub.clone());
        // One limiter for every worker, or each would grant the whole rate.
        let limiter = web::Data::new(RateLimiter::new(
            hub.config.rate_limit,
            hub.config.rate_burst,
        ));
        let per_ip = ConnectionsPerIp::new(hub.config.max_connections_per_ip);
        let mcp = mcp::http::service(&hub);
        let openapi = web::Data::new(OpenApiJson::build().map_err(StartupError::OpenApi)?);
        let mut server = HttpServer::new(move || {
            let mut app = App::new();
            if let Some(admin) = &admin_data {
                app = app.app_data(admin.clone());
            }
            // Without an admin listener there is nothing to keep off: not even a lookup.
            app.wrap(Condition::new(
                admin_data.is_some(),
                from_fn(middleware::public_routes_only),
            ))
            // Outermost, so that it logs what the listener split answered too.
            .wrap(from_fn(middleware::access_log))
            .app_data(data.clone())
            .app_data(limiter.clone())
            .app_data(openapi.clone())
            .configure(http::register)
            .configure(mcp::http::configure(mcp.clone()))
            .default_service(web::to(|| async {
                HttpResponse::NotFound().json(ApiError::NotFound.body())
            }))
        })
        .on_connect(move |io, data| per_ip.on_connect(io, data))
        .workers(workers)
        // Signals are ours to handle: sockets must be closed before the server drains.
        .disable_signals()
        .shutdown_timeout(10);
        if let Some(per_worker) = connections {
            server = server.max_connections(per_worker);
        }
        let mut server = server.listen(listener).map_err(&listen_err)?;
        let admin_port = match admin {
            Some((admin_listener, bound)) => {
                server = server
                    .listen(admin_listener)
                    .map_err(|source| StartupError::Listen {
                        addr: bound.to_string(),
                        source,
                    })?;
                Some(bound)
            }
            None => None,
        };
        let server = server.run();

        actix_web::rt::spawn(retention::run(
            hub.writer.clone(),
            hub.config.retention,
            hub.config.retention_sweep,
            hub.shutdown.clone(),
        ));
        Ok(Self {
            port: local.port(),
            admin_addr: admin_port,
            server,
            hub,
            first_owner,
            _data_dir_lock: data_dir_lock,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin listener's address, when `--admin-listen` was given.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin_addr
    }

    pub fn public_url(&self) -> &str {
        &self.hub.public_url
    }

    /// The owner account made on the first start of an empty data directory, with its
    /// token: shown once, by whoever started the hub.
    pub fn first_owner(&self) -> Option<&CreatedAccount> {
        self.first_owner.as_ref()
    }

    /// Serves until `shutdown` resolves, then stops accepting, closes agent sockets with
    /// 1001, and waits for accepted requests to be committed and answered.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let handle = self.server.handle();
        let server = actix_web::rt::spawn(self.server);
        shutdown.await;
        tracing::info!("shutting down: closing agent sockets, finishing accepted requests");
        self.hub.shutdown.cancel();
        let _ = self.hub.registry.send(CloseAll).await;
        handle.stop(true).await;
        match server.await {
            Ok(result) => result,
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

/// The master key, checked against the data directory before anything is served: a
/// directory restored without its key, or started with another one, refuses to start
/// instead of answering every sender 500. The first start seals a check value; a
/// directory from before the check existed is checked against a sealed signing secret.
async fn open_master_key(store: &Store, config: &Config) -> Result<MasterKey, StartupError> {
    let check = store.master_key_check().await?;
    let older = match check {
        Some(_) => None,
        None => store.any_sealed_signing_secret().await?,
    };
    let key = MasterKey::load(
        config.master_key.as_ref(),
        &config.data_dir,
        check.is_some() || older.is_some(),
    )?;
    let opens = match (&check, &older) {
        (Some(sealed), _) => key
            .open(sealed, crypto::KEY_CHECK_AAD)
            .is_ok_and(|text| text.expose() == crypto::KEY_CHECK_TEXT),
        (None, Some((webhook, sealed))) => key.open(sealed, &crypto::signing_aad(webhook)).is_ok(),
        (None, None) => true,
    };
    if !opens {
        let hint = if config.master_key.is_some() {
            "HOOKHUB_MASTER_KEY (or --master-key) is not that key: give the one it was started with"
                .to_owned()
        } else {
            format!(
                "{} is not that key: put back the master.key it was started with, or give that key as HOOKHUB_MASTER_KEY",
                config.data_dir.join("master.key").display()
            )
        };
        return Err(StartupError::WrongMasterKey { hint });
    }
    if check.is_none() {
        store
            .set_master_key_check(&key.seal(crypto::KEY_CHECK_TEXT, crypto::KEY_CHECK_AAD)?)
            .await?;
    }
    Ok(key)
}

/// One server per data directory: its delivery writer numbers rows and queue positions
/// on its own, so a second server on the same files would collide with it. The lock is
/// the operating system's, so it ends with the process, `kill -9` included. The `account`
/// and `agent` commands do not take it: they are meant to run beside a server.
fn lock_data_dir(dir: &Path) -> Result<File, StartupError> {
    datadir::create_private_dir(dir).map_err(StartupError::DataDir)?;
    let path = dir.join("serve.lock");
    let file = datadir::private_file_options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(StartupError::DataDirLock)?;
    datadir::tighten(&path).map_err(StartupError::DataDir)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StartupError::DataDirInUse(dir.display().to_string())),
        Err(TryLockError::Error(e)) => Err(StartupError::DataDirLock(e)),
    }
}
