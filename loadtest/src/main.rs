//! `loadtest`: drives a real hookhub — started here from its binary on a fresh data
//! directory, or already running at a loopback URL — with real HTTP posts and real agent
//! WebSockets, and reports a markdown table and JSON. Every scenario counts loss and
//! duplicates by `deliveryId` against the 202s it got, checks each agent's order, and
//! exits non-zero on any loss, reordering or error.
//!
//! # Layout
//!
//! - [`hub`]: starting or attaching to the hub, creating agents and webhooks, `/metrics`.
//! - [`post`]: posters (one HTTP/1.1 connection each), closed or open loop.
//! - [`agent`]: simulated agents that ack everything and keep a ledger.
//! - [`verdict`]: 202s against receipts: loss, duplicates, order.
//! - [`scenarios`]: `ingest`, `latency`, `backlog`, `connections`.
//! - [`report`], [`sys`]: output; CPU, memory and file limits from `/proc`.

mod agent;
mod http;
mod hub;
mod post;
mod report;
mod scenarios;
mod sys;
mod verdict;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use serde_json::json;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
#[command(
    name = "loadtest",
    about = "Load test a hookhub: throughput, latency, backlog flush, idle sockets; fails on any loss or reordering"
)]
struct Cli {
    /// The hookhub binary to start on a fresh temporary data directory.
    #[arg(long, global = true, default_value = "target/release/hookhub")]
    hub_bin: PathBuf,
    /// Drive the hub running at this loopback URL instead of starting one.
    #[arg(long, global = true)]
    url: Option<String>,
    /// Owner token for the hub at --url.
    #[arg(
        long,
        global = true,
        env = "HOOKHUB_OWNER_TOKEN",
        hide_env_values = true
    )]
    owner_token: Option<String>,
    /// Pid of the hub at --url, to read its CPU time, memory and file limit from /proc.
    #[arg(long, global = true)]
    hub_pid: Option<u32>,
    /// An extra argument for the started `hookhub serve` (repeatable), e.g. --hub-arg=--window=200.
    /// The started hub runs with --rate-limit=0 and --max-connections-per-ip=0 unless
    /// they are given here.
    #[arg(long = "hub-arg", global = true, allow_hyphen_values = true)]
    hub_args: Vec<String>,
    /// RUST_LOG of the started hub (its log goes to a file in its temporary directory).
    #[arg(long, global = true, default_value = "warn")]
    hub_log: String,
    /// Worker threads of the load generator.
    #[arg(long, global = true, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
    /// Longest wait, in seconds, for deliveries to arrive and acks to be committed.
    #[arg(long, global = true, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
    drain_timeout: u64,
    /// Also write the JSON report to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N agents online and acking, M posters: accepted/s, ingest latency, CPU per delivery.
    Ingest {
        /// Agents online, one webhook each; posts go round-robin over their webhooks.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=20_000))]
        agents: u32,
        /// Concurrent posters, one connection each.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4096))]
        posters: u32,
        /// Body size in bytes.
        #[arg(long, default_value_t = 1024, value_parser = body_bytes)]
        body_bytes: usize,
        /// Posts in all.
        #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
        requests: u64,
        /// Open loop at this many posts per second; without it, closed loop.
        #[arg(long, value_parser = rate)]
        rate: Option<f64>,
    },
    /// POST-to-agent latency at fixed rates, open loop.
    Latency {
        /// Rates to run, comma-separated, posts per second.
        #[arg(long, value_delimiter = ',', default_value = "1000,10000", value_parser = rate)]
        rates: Vec<f64>,
        /// Seconds per rate.
        #[arg(long, default_value_t = 10.0, value_parser = seconds)]
        seconds: f64,
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=20_000))]
        agents: u32,
        #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=4096))]
        posters: u32,
        #[arg(long, default_value_t = 1024, value_parser = body_bytes)]
        body_bytes: usize,
    },
    /// Queue while agents are offline, then time the flush to the last ack.
    Backlog {
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20_000))]
        agents: u32,
        /// Deliveries queued for each agent.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        per_agent: u64,
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4096))]
        posters: u32,
        #[arg(long, default_value_t = 1024, value_parser = body_bytes)]
        body_bytes: usize,
        /// Agent handshakes in flight at once when the flush starts.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
        connect_concurrency: u32,
    },
    /// One agent, one busy webhook, acking each delivery as it arrives: closed loop, then
    /// open loop at --rate.
    OneAgent {
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
        posters: u32,
        #[arg(long, default_value_t = 1024, value_parser = body_bytes)]
        body_bytes: usize,
        /// Posts of the closed-loop phase.
        #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
        requests: u64,
        /// Posts per second of the open-loop phase.
        #[arg(long, default_value_t = 1000.0, value_parser = rate)]
        rate: f64,
        /// Seconds of the open-loop phase.
        #[arg(long, default_value_t = 10.0, value_parser = seconds)]
        seconds: f64,
    },
    /// One agent's offline backlog drained with MCP `next_events` (max 100, acking as it
    /// goes), then the same backlog flushed over its WebSocket: events/s, round trips.
    Mcp {
        /// Deliveries queued, for each of the two phases.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        events: u64,
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
        posters: u32,
        #[arg(long, default_value_t = 1024, value_parser = body_bytes)]
        body_bytes: usize,
    },
    /// Hold idle agent sockets up to the file limit: hub RSS per socket, idle CPU.
    Connections {
        /// Sockets to open, or `max` for as many as the file limits allow.
        #[arg(long, default_value = "max", value_parser = connections)]
        connections: ConnectionCount,
        /// Seconds to hold them idle while measuring CPU (heartbeats keep running).
        #[arg(long, default_value_t = 30.0, value_parser = seconds)]
        idle_seconds: f64,
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
        connect_concurrency: u32,
        /// File descriptors left free in each process for everything else.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(16..=100_000))]
        reserve: u64,
    },
}

#[derive(Clone, Copy)]
enum ConnectionCount {
    Max,
    Exactly(u64),
}

fn connections(s: &str) -> Result<ConnectionCount, String> {
    if s == "max" {
        return Ok(ConnectionCount::Max);
    }
    match s.parse::<u64>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(ConnectionCount::Exactly(n)),
        _ => Err("expected `max` or a number of sockets from 1 to 1000000".to_owned()),
    }
}

fn body_bytes(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (128..=16 * 1024 * 1024).contains(&n) => Ok(n),
        _ => {
            Err("expected a body size from 128 bytes (room for the marker) to 16777216".to_owned())
        }
    }
}

fn rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && (1.0..=1_000_000.0).contains(&r) => Ok(r),
        _ => Err("expected a rate from 1 to 1000000 posts per second".to_owned()),
    }
}

fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && (0.1..=3600.0).contains(&r) => Ok(r),
        _ => Err("expected seconds from 0.1 to 3600".to_owned()),
    }
}

impl Cli {
    /// Checks what clap cannot: combinations and the hub to drive.
    fn validate(&self) -> Result<(), String> {
        match (&self.url, &self.owner_token) {
            (Some(url), None) => {
                return Err(format!(
                    "--url {url} needs --owner-token (or HOOKHUB_OWNER_TOKEN)"
                ))
            }
            (Some(url), Some(_)) => {
                hub::loopback_addr(url).map_err(|e| e.to_string())?;
            }
            (None, _) => {
                if !self.hub_bin.is_file() {
                    return Err(format!(
                        "no hub binary at {} (build it with `cargo build --release -p hookhub`, or pass --hub-bin or --url)",
                        self.hub_bin.display()
                    ));
                }
                if self.hub_pid.is_some() {
                    return Err(
                        "--hub-pid is for a hub at --url; a started hub's pid is known".to_owned(),
                    );
                }
            }
        }
        if self.url.is_some() && !self.hub_args.is_empty() {
            return Err("--hub-arg applies to a started hub, not to one at --url".to_owned());
        }
        if let Some(pid) = self.hub_pid {
            sys::cpu_time(pid)
                .map_err(|e| format!("--hub-pid {pid}: cannot read /proc/{pid}/stat: {e}"))?;
        }
        match &self.scenario {
            Scenario::Ingest { requests, posters, .. } if *requests < u64::from(*posters) => Err(format!(
                "--requests {requests} is fewer than --posters {posters}: some posters would post nothing"
            )),
            Scenario::OneAgent { requests, posters, rate, seconds, .. }
                if *requests < u64::from(*posters) || rate * seconds < f64::from(*posters) =>
            {
                Err(format!(
                    "--requests {requests} and --rate × --seconds must each be at least --posters {posters}: some posters would post nothing"
                ))
            }
            Scenario::Latency { rates, .. } if rates.is_empty() => Err("--rates needs at least one rate".to_owned()),
            _ => Ok(()),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.validate() {
        eprintln!("loadtest: {e}");
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(cli.threads))
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadtest: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("loadtest: FAILED: deliveries were lost, reordered or refused (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("loadtest: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<bool, Error> {
    // Sockets are files: take all the room the hard limit gives, for this process and for
    // the hub it starts, which inherits the limit.
    let (own_soft, own_hard) = sys::raise_nofile_limit()?;
    let own_cpu0 = sys::own_cpu_time();
    let mut hub = match (&cli.url, &cli.owner_token) {
        (Some(url), Some(token)) => hub::Hub::attach(url, token.clone(), cli.hub_pid).await?,
        _ => {
            hub::Hub::start(hub::Launch {
                bin: &cli.hub_bin,
                args: &cli.hub_args,
                log_filter: &cli.hub_log,
            })
            .await?
        }
    };
    let common = scenarios::Common {
        drain: Duration::from_secs(cli.drain_timeout),
    };
    let (name, parameters, phases) = match cli.scenario {
        Scenario::Ingest {
            agents,
            posters,
            body_bytes,
            requests,
            rate,
        } => {
            let params = json!({"agents": agents, "posters": posters, "body_bytes": body_bytes, "requests": requests, "rate": rate});
            let args = scenarios::ingest::Args {
                agents: agents as usize,
                posters: posters as usize,
                body_bytes,
                requests,
                rate,
            };
            (
                "ingest",
                params,
                scenarios::ingest::run(&mut hub, &common, args).await,
            )
        }
        Scenario::Latency {
            rates,
            seconds,
            agents,
            posters,
            body_bytes,
        } => {
            let params = json!({"rates": rates, "seconds": seconds, "agents": agents, "posters": posters, "body_bytes": body_bytes});
            let args = scenarios::latency::Args {
                rates,
                seconds,
                agents: agents as usize,
                posters: posters as usize,
                body_bytes,
            };
            (
                "latency",
                params,
                scenarios::latency::run(&mut hub, &common, args).await,
            )
        }
        Scenario::Backlog {
            agents,
            per_agent,
            posters,
            body_bytes,
            connect_concurrency,
        } => {
            let params = json!({"agents": agents, "per_agent": per_agent, "posters": posters, "body_bytes": body_bytes, "connect_concurrency": connect_concurrency});
            let args = scenarios::backlog::Args {
                agents: agents as usize,
                per_agent,
                posters: posters as usize,
                body_bytes,
                connect_concurrency: connect_concurrency as usize,
            };
            (
                "backlog",
                params,
                scenarios::backlog::run(&mut hub, &common, args).await,
            )
        }
        Scenario::OneAgent {
            posters,
            body_bytes,
            requests,
            rate,
            seconds,
        } => {
            let params = json!({"posters": posters, "body_bytes": body_bytes, "requests": requests, "rate": rate, "seconds": seconds});
            let args = scenarios::one_agent::Args {
                posters: posters as usize,
                body_bytes,
                requests,
                rate,
                seconds,
            };
            (
                "one-agent",
                params,
                scenarios::one_agent::run(&mut hub, &common, args).await,
            )
        }
        Scenario::Mcp {
            events,
            posters,
            body_bytes,
        } => {
            let params = json!({"events": events, "posters": posters, "body_bytes": body_bytes});
            let args = scenarios::mcp::Args {
                events,
                posters: posters as usize,
                body_bytes,
            };
            (
                "mcp",
                params,
                scenarios::mcp::run(&mut hub, &common, args).await,
            )
        }
        Scenario::Connections {
            connections,
            idle_seconds,
            connect_concurrency,
            reserve,
        } => {
            let count = match connections {
                ConnectionCount::Max => None,
                ConnectionCount::Exactly(n) => Some(n),
            };
            let params = json!({"connections": count.map_or(json!("max"), |n| json!(n)), "idle_seconds": idle_seconds, "connect_concurrency": connect_concurrency, "reserve": reserve});
            let args = scenarios::connections::Args {
                connections: count,
                idle: Duration::from_secs_f64(idle_seconds),
                connect_concurrency: connect_concurrency as usize,
                reserve,
            };
            (
                "connections",
                params,
                scenarios::connections::run(&mut hub, &common, args, own_soft).await,
            )
        }
    };
    let hub_info = json!({
        "driven": hub.label,
        "pid": hub.pid,
        "file_limit": hub.nofile(),
    });
    let phases = match phases {
        Ok(p) => p,
        Err(e) => {
            if let Some(log) = hub.log_path() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                eprintln!("loadtest: the hub's last log lines:");
                for line in tail.iter().rev() {
                    eprintln!("  {line}");
                }
            }
            return Err(e);
        }
    };
    let stopped = hub.stop().await;
    let passed = phases.iter().all(|p| p.verdict.passed()) && stopped.is_ok();
    let report = report::Report {
        scenario: name,
        parameters,
        hub: json!({"info": hub_info, "loadtest_file_limit": [own_soft, own_hard], "graceful_stop": stopped.as_ref().map_err(|e| e.to_string()).err()}),
        phases,
        loadtest_cpu_seconds: sys::own_cpu_time().saturating_sub(own_cpu0).as_secs_f64(),
        passed,
    };
    println!("{}", report.markdown());
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(path) = &cli.json {
        std::fs::write(path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Err(e) = stopped {
        eprintln!("loadtest: {e}");
    }
    Ok(passed)
}
