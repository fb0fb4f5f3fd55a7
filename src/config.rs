//! Settings for `hookhub serve`. Every setting is a flag and a `HOOKHUB_*` environment
//! variable, and every one has a default, so `hookhub serve` alone runs a working hub.

use std::{path::PathBuf, time::Duration};

use clap::Args;

use crate::crypto::{parse_secret, Secret};

#[derive(Clone, Debug, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOOKHUB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// A second address, for the operator: with it, the dashboard, the owner's management
    /// API, `/metrics` and the OpenAPI document are served there and not on `--listen`,
    /// which keeps only what senders and agents need (ingest, the agent socket, MCP, an
    /// agent's own `/v1/agents/me/…` routes, /healthz). Bind it to loopback or a private
    /// network.
    #[arg(long, env = "HOOKHUB_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,

    /// Directory for the SQLite database and the generated master key.
    #[arg(long, env = "HOOKHUB_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Base of every webhook `url` (default: `http://` + the listen address).
    #[arg(long, env = "HOOKHUB_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Browser origins, besides the public URL's own, allowed to call `/v1/mcp`
    /// (comma-separated, such as `http://localhost:6274`). A request whose `Origin`
    /// is any other gets 403; one without `Origin` (not from a browser) is not checked.
    #[arg(long, env = "HOOKHUB_MCP_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub mcp_allowed_origins: Vec<String>,

    /// Base64 of 32 bytes sealing secrets at rest (default: a key file in the data dir).
    #[arg(long, env = "HOOKHUB_MASTER_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub master_key: Option<Secret>,

    /// Largest accepted ingest body, in bytes (default 25 MiB, GitHub's cap).
    #[arg(long, env = "HOOKHUB_MAX_BODY_BYTES", default_value_t = 25 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// How long a rotated-out signing secret keeps verifying.
    #[arg(long, env = "HOOKHUB_ROTATION_OVERLAP", default_value = "24h", value_parser = humantime::parse_duration)]
    pub rotation_overlap: Duration,

    /// How long deliveries are kept; unacked ones past it become `expired`.
    #[arg(long, env = "HOOKHUB_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub retention: Duration,

    /// How often retention is applied.
    #[arg(long, env = "HOOKHUB_RETENTION_SWEEP", default_value = "60s", value_parser = humantime::parse_duration)]
    pub retention_sweep: Duration,

    /// Most unacked deliveries one agent may have queued before ingest answers 503.
    #[arg(long, env = "HOOKHUB_BACKLOG_CAP", default_value_t = 1_000_000)]
    pub backlog_cap: u64,

    /// Most bytes of bodies one agent may have queued before ingest answers 503: with
    /// the count above, what senders can add to the disk for one agent (a delivery
    /// larger than this still goes into an empty backlog).
    #[arg(long, env = "HOOKHUB_BACKLOG_BYTES", default_value_t = 4 * 1024 * 1024 * 1024)]
    pub backlog_bytes: u64,

    /// Most deliveries in flight (sent, not acked) on one agent socket.
    #[arg(long, env = "HOOKHUB_WINDOW", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub window: u32,

    /// A request body must arrive whole within this long after its head, or it is
    /// answered 408 and its connection closed.
    #[arg(long, env = "HOOKHUB_BODY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,

    /// Most request bodies one peer address may have being read at once; past it, 429
    /// and the connection is closed (0: no bound). Behind a reverse proxy every request
    /// comes from the proxy's address: raise it there, or let the proxy bound this.
    #[arg(long, env = "HOOKHUB_MAX_BODIES_PER_IP", default_value_t = 64)]
    pub max_bodies_per_ip: usize,

    /// Most connections one peer address may hold open, idle or not (0: no bound);
    /// past it, a new one is shut as soon as it is accepted. Behind a reverse proxy,
    /// raise it or let the proxy bound this.
    #[arg(long, env = "HOOKHUB_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,

    /// Most bytes of request bodies held while they arrive, all senders together; past
    /// it, the body that has been arriving longest is given up (408).
    #[arg(long, env = "HOOKHUB_MAX_BODY_MEMORY", default_value_t = 256 * 1024 * 1024)]
    pub max_body_memory: usize,

    /// Most body bytes in flight on one agent socket, and most read ahead for it: the
    /// window's count is also bounded in bytes. A delivery larger than this still goes,
    /// alone.
    #[arg(long, env = "HOOKHUB_WINDOW_BYTES", default_value_t = 8 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub window_bytes: u64,

    /// A delivery unacked this long is sent again on the same socket.
    #[arg(long, env = "HOOKHUB_ACK_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub ack_timeout: Duration,

    /// Times a delivery is handed out without an ack (nacked, timed out, cut off by a
    /// disconnect) before it is given up on as `failed`; 0: no limit. A failed delivery
    /// blocks nothing behind it, and stays readable and redeliverable.
    #[arg(long, env = "HOOKHUB_MAX_ATTEMPTS", default_value_t = 20)]
    pub max_attempts: u32,

    /// How often an agent socket is pinged.
    #[arg(long, env = "HOOKHUB_HEARTBEAT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,

    /// A socket silent this long (no frame, no pong) is dropped as dead.
    #[arg(long, env = "HOOKHUB_CLIENT_TIMEOUT", default_value = "45s", value_parser = humantime::parse_duration)]
    pub client_timeout: Duration,

    /// Ingest requests per second one webhook may sustain; past it, 429 with Retry-After.
    /// Fractions are allowed (0.5 = one every 2 s); 0 turns the limit off.
    #[arg(long, env = "HOOKHUB_RATE_LIMIT", default_value_t = 1000.0, value_parser = parse_rate)]
    pub rate_limit: f64,

    /// Requests one webhook may send at once, after a quiet spell, above the sustained rate.
    #[arg(long, env = "HOOKHUB_RATE_BURST", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_burst: u32,

    /// How long a dashboard sign-in lasts before the owner must sign in again.
    #[arg(long, env = "HOOKHUB_SESSION_TTL", default_value = "12h", value_parser = humantime::parse_duration)]
    pub session_ttl: Duration,
}

impl Config {
    /// The defaults, on the given data directory and an OS-chosen port.
    pub fn for_data_dir(data_dir: PathBuf) -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: Config,
        }
        let mut config = <Wrapper as clap::Parser>::parse_from(["hookhub"]).config;
        config.data_dir = data_dir;
        config.listen = "127.0.0.1:0".to_owned();
        config.master_key = None;
        config.public_url = None;
        config.admin_listen = None;
        config
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err("must be a number of requests per second, 0 or more".to_owned()),
    }
}
