//! The hub under test: one this tool starts from a binary on a fresh temporary data
//! directory, or one already running at a loopback URL. Also what is set up on it
//! (agents, webhooks) and what it reports about itself (`/metrics`, `/proc`).

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    net::{SocketAddr, ToSocketAddrs},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::STANDARD, Engine};
use hyper::Method;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::{mpsc, Semaphore};

use crate::{http::Conn, sys, Error};

pub struct Hub {
    pub addr: SocketAddr,
    pub owner_token: String,
    /// Known when this tool started the hub, or given with `--hub-pid`.
    pub pid: Option<u32>,
    /// What is being driven: the binary's path or the URL.
    pub label: String,
    child: Option<Child>,
    /// Holds the data directory (and the hub's log) until the hub has stopped.
    dir: Option<TempDir>,
}

/// How to start a hub.
pub struct Launch<'a> {
    pub bin: &'a Path,
    pub args: &'a [String],
    pub log_filter: &'a str,
}

impl Hub {
    /// Starts `bin serve` on a fresh data directory and an OS-chosen loopback port.
    pub async fn start(launch: Launch<'_>) -> Result<Self, Error> {
        let bin = launch.bin;
        if !bin.is_file() {
            return Err(format!(
                "no hub binary at {} (build it with `cargo build --release -p hookhub`, or pass --hub-bin or --url)",
                bin.display()
            )
            .into());
        }
        let dir = tempfile::Builder::new()
            .prefix("hookhub-loadtest-")
            .tempdir()?;
        let data_dir = dir.path().join("data");
        // The owner is made by the CLI, whose output is JSON, so that nothing depends on
        // the wording of the server's first-start banner.
        let create = |init: bool| {
            let mut command = Command::new(bin);
            command.args(["account", "create"]);
            if init {
                command.arg("--init");
            }
            command
                .args(["--name", "loadtest", "--data-dir"])
                .arg(&data_dir)
                .env("RUST_LOG", "warn")
                .output()
                .map_err(|e| format!("cannot run {}: {e}", bin.display()))
        };
        let mut out = create(true)?;
        // A build from before `--init` (measured against, A/B) makes the directory unasked.
        if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("'--init'") {
            out = create(false)?;
        }
        if !out.status.success() {
            return Err(format!(
                "`hookhub account create` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
        let created: Value = serde_json::from_slice(&out.stdout)?;
        let owner_token = created["token"]
            .as_str()
            .ok_or("`hookhub account create` printed no token")?
            .to_owned();

        // The per-webhook rate limit is a policy, not a capacity: off unless asked for, so
        // that it does not cap what is measured.
        let mut args: Vec<String> = Vec::new();
        if !launch.args.iter().any(|a| a.starts_with("--rate-limit")) {
            args.push("--rate-limit=0".to_owned());
        }
        // So is the bound on connections per address: it is there for many senders, and
        // every connection of the load generator comes from one address. A hub older than
        // the flag does not get it.
        let flag = "--max-connections-per-ip";
        if !launch.args.iter().any(|a| a.starts_with(flag)) {
            let help = Command::new(bin).args(["serve", "--help"]).output()?;
            if String::from_utf8_lossy(&help.stdout).contains(flag) {
                args.push(format!("{flag}=0"));
            }
        }
        args.extend(launch.args.iter().cloned());
        let log_path = dir.path().join("hub.log");
        let log = std::fs::File::create(&log_path)?;
        // The hub inherits this process's file limit, raised to the hard limit at start.
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .env("RUST_LOG", launch.log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().ok_or("no stdout from the hub")?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        // The hub's stdout is read to the end, so that it can never block on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            let line = tokio::time::timeout_at(deadline.into(), rx.recv()).await;
            match line {
                Ok(Some(line)) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let url = rest.split_whitespace().next().unwrap_or_default();
                        break url.to_owned();
                    }
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    return Err(format!(
                        "the hub did not say where it listens within 60 s; its log:\n{log}"
                    )
                    .into());
                }
            }
        };
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let addr = loopback_addr(&url)?;
        let hub = Self {
            addr,
            owner_token,
            pid: Some(pid),
            label: bin.display().to_string(),
            child: Some(child),
            dir: Some(dir),
        };
        hub.wait_healthy().await?;
        Ok(hub)
    }

    /// A hub already running at `url`.
    pub async fn attach(url: &str, owner_token: String, pid: Option<u32>) -> Result<Self, Error> {
        let hub = Self {
            addr: loopback_addr(url)?,
            owner_token,
            pid,
            label: url.to_owned(),
            child: None,
            dir: None,
        };
        hub.wait_healthy().await?;
        Ok(hub)
    }

    async fn wait_healthy(&self) -> Result<(), Error> {
        let mut last = String::new();
        for _ in 0..100 {
            match Conn::open(self.addr).await {
                Ok(mut c) => match c
                    .request(Method::GET, "/healthz", &[], Default::default())
                    .await
                {
                    Ok(r) if r.status == 200 => return Ok(()),
                    Ok(r) => last = format!("/healthz answered {}", r.status),
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("the hub at {} is not healthy: {last}", self.addr).into())
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/agent/connect", self.addr)
    }

    pub fn log_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("hub.log"))
    }

    pub fn cpu_time(&self) -> Option<Duration> {
        self.pid.and_then(|p| sys::cpu_time(p).ok())
    }

    pub fn written_bytes(&self) -> Option<u64> {
        self.pid.and_then(|p| sys::written_bytes(p).ok())
    }

    pub fn rss(&self) -> Option<u64> {
        self.pid.and_then(|p| sys::rss_bytes(p).ok())
    }

    /// The hub's `Max open files`, when its pid is known.
    pub fn nofile(&self) -> Option<(u64, u64)> {
        self.pid.and_then(|p| sys::nofile_limits(p).ok())
    }

    /// Whether the started hub has exited (it must not, during a run).
    pub fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(format!("the hub exited during the run: {status}")),
            _ => None,
        }
    }

    /// Stops a started hub with SIGTERM (a graceful shutdown) and waits for it.
    pub async fn stop(mut self) -> Result<(), Error> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    return Err(format!("the hub exited with {status} on SIGTERM").into());
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the hub did not stop within 30 s of SIGTERM".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `http://host:port` → a socket address, which must be on this machine.
pub fn loopback_addr(url: &str) -> Result<SocketAddr, Error> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}` is not an http:// URL"))?;
    let hostport = rest.split('/').next().unwrap_or_default();
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{hostport}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{hostport}` resolves to nothing"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "`{url}` is not a loopback address; loadtest only drives a hub on this machine"
        )
        .into());
    }
    Ok(addr)
}

/// An agent made for a run, with one generic webhook when deliveries are posted to it.
pub struct Agent {
    pub token: String,
    pub webhook: Option<Webhook>,
}

/// Where to post, and the key to sign with (Standard Webhooks, as the generic provider
/// expects).
#[derive(Clone)]
pub struct Webhook {
    pub path: String,
    pub agent: usize,
    pub key: Arc<Vec<u8>>,
}

/// Creates `count` agents (each with a webhook if `webhooks`), `concurrency` at a time.
pub async fn create_agents(
    hub: &Hub,
    count: usize,
    webhooks: bool,
    concurrency: usize,
) -> Result<Vec<Agent>, Error> {
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(count);
    let (addr, owner) = (hub.addr, Arc::new(hub.owner_token.clone()));
    // A few connections, reused: one per concurrent creator.
    let conns = Arc::new(tokio::sync::Mutex::new(Vec::<Conn>::new()));
    for i in 0..count {
        let (sem, owner, conns) = (sem.clone(), owner.clone(), conns.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await?;
            let pooled = conns.lock().await.pop();
            let mut conn = match pooled {
                Some(c) => c,
                None => Conn::open(addr).await?,
            };
            let agent = create_one(&mut conn, &owner, i, webhooks).await;
            conns.lock().await.push(conn);
            agent
        }));
    }
    let mut agents = Vec::with_capacity(count);
    for t in tasks {
        agents.push(t.await??);
    }
    Ok(agents)
}

async fn create_one(conn: &mut Conn, owner: &str, i: usize, webhook: bool) -> Result<Agent, Error> {
    let r = conn
        .call(
            Method::POST,
            "/v1/agents",
            owner,
            Some(&json!({"name": format!("loadtest-{i}")})),
        )
        .await?;
    if r.status != 201 {
        return Err(format!(
            "creating an agent: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        )
        .into());
    }
    let v = r.json();
    let (agent_id, token) = match (v["agentId"].as_str(), v["token"].as_str()) {
        (Some(a), Some(t)) => (a.to_owned(), t.to_owned()),
        _ => return Err(format!("unexpected agent create response: {v}").into()),
    };
    if !webhook {
        return Ok(Agent {
            token,
            webhook: None,
        });
    }
    let r = conn
        .call(
            Method::POST,
            &format!("/v1/agents/{agent_id}/webhooks"),
            owner,
            Some(&json!({"name": "loadtest", "provider": "generic"})),
        )
        .await?;
    if r.status != 201 {
        return Err(format!(
            "creating a webhook: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        )
        .into());
    }
    let v = r.json();
    let (id, secret) = match (v["webhookId"].as_str(), v["signingSecret"].as_str()) {
        (Some(i), Some(s)) => (i, s),
        _ => return Err(format!("unexpected webhook create response: {v}").into()),
    };
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|e| format!("the signing secret is not whsec_<base64>: {e}"))?;
    Ok(Agent {
        token,
        webhook: Some(Webhook {
            path: format!("/v1/hooks/{id}"),
            agent: i,
            key: Arc::new(key),
        }),
    })
}

/// The unlabelled samples of a `/metrics` scrape, by name.
#[derive(Debug, Default, Clone)]
pub struct Scrape(pub HashMap<String, f64>);

impl Scrape {
    pub fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(0.0)
    }
}

pub async fn scrape(hub: &Hub) -> Result<Scrape, Error> {
    let mut conn = Conn::open(hub.addr).await?;
    let r = conn
        .request(Method::GET, "/metrics", &[], Default::default())
        .await?;
    if r.status != 200 {
        return Err(format!("/metrics answered {}", r.status).into());
    }
    let text = String::from_utf8_lossy(&r.body);
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.contains('{') {
            continue;
        }
        let mut it = line.split_whitespace();
        if let (Some(name), Some(value)) = (it.next(), it.next()) {
            if let Ok(v) = value.parse::<f64>() {
                samples.insert(name.to_owned(), v);
            }
        }
    }
    Ok(Scrape(samples))
}

/// Samples the hub's RSS until stopped; the answer is the peak.
pub struct RssSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    pub fn start(pid: Option<u32>) -> Self {
        let (stop, mut rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            let Some(pid) = pid else { return 0 };
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                if let Ok(rss) = sys::rss_bytes(pid) {
                    peak = peak.max(rss);
                }
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut rx => break,
                }
            }
            peak
        });
        Self { stop, task }
    }

    pub async fn peak(self) -> u64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0)
    }
}
