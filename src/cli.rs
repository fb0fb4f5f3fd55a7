//! The command line: `serve`, `account create`, `agent create`, `listen`, `mcp`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::{
    client::{self, ListenArgs},
    config::Config,
    crypto::{parse_secret, Secret},
    domain::ids::AccountId,
    logging, mcp,
    service::{accounts, agents},
    shutdown,
    startup::Application,
    store::Store,
};

#[derive(Parser)]
#[command(
    name = "hookhub",
    version,
    about = "A self-hosted realtime webhook hub for AI agents"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub.
    Serve(Box<Config>),
    /// Manage owner accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Manage agents.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Forward an agent's deliveries to a local app, or print them as JSON lines.
    Listen(Box<ListenArgs>),
    /// Serve the agent's MCP tools on stdin/stdout, relayed to a running hub: for MCP
    /// clients that start a command. Logs go to stderr.
    Mcp(McpArgs),
}

#[derive(clap::Args)]
struct McpArgs {
    /// Base URL of the hub.
    #[arg(long, env = "HOOKHUB_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The agent's token (hh_agent_…). Prefer the environment variable: a flag can be
    /// seen by other users of the machine.
    #[arg(long, env = "HOOKHUB_AGENT_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    token: Secret,
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an owner account and print it, with its token, as JSON.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, env = "HOOKHUB_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Create an agent for an account and print it, with its token, as JSON.
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: String,
        #[arg(long, env = "HOOKHUB_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
}

pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(config) => serve(*config).await,
        Command::Account {
            command: AccountCommand::Create { name, data_dir },
        } => account_create(&name, &data_dir).await,
        Command::Agent {
            command:
                AgentCommand::Create {
                    account,
                    name,
                    data_dir,
                },
        } => agent_create(&account, &name, &data_dir).await,
        Command::Listen(args) => client::run(*args).await,
        Command::Mcp(args) => mcp::stdio::run(&args.url, &args.token).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("hookhub: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    survive_file_size_limit();
    let app = Application::build(config)
        .await
        .map_err(|e| e.to_string())?;
    let url = app.public_url().to_owned();
    if let Some(owner) = app.first_owner() {
        // Printed, not logged: it is shown once, to whoever started the hub.
        println!(
            "hookhub: first start, created the owner account {}",
            owner.account_id
        );
        println!(
            "hookhub: owner token (shown once, keep it): {}",
            owner.token
        );
    }
    println!("hookhub: listening on {url}  (dashboard: {url}/)");
    tracing::info!(url = %url, "hookhub started");
    let stop_reports = CancellationToken::new();
    let reports = actix_web::rt::spawn(logging::report_malformed(stop_reports.clone()));
    let served = app.run_until(shutdown::signal()).await;
    stop_reports.cancel();
    let _ = reports.await;
    served.map_err(|e| e.to_string())
}

/// A write past the file-size limit (`ulimit -f`, a quota) raises SIGXFSZ, and its default
/// action kills the process: every request in flight would be lost, not answered. Handled,
/// the write fails with EFBIG instead, SQLite reports the commit as failed, and the hub
/// answers 503 and goes on, as PostgreSQL does. The handler stays for the process's life.
fn survive_file_size_limit() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::from_raw(libc::SIGXFSZ)) {
            Ok(mut xfsz) => {
                actix_web::rt::spawn(async move {
                    while xfsz.recv().await.is_some() {
                        tracing::debug!("SIGXFSZ: a write went past the file-size limit");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot handle SIGXFSZ; a write past the file-size limit will kill the hub")
            }
        }
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<(), String> {
    let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

async fn account_create(name: &str, data_dir: &std::path::Path) -> Result<(), String> {
    let store = Store::open(data_dir).await.map_err(|e| e.to_string())?;
    let created = accounts::create_account(&store, name)
        .await
        .map_err(|e| e.public_message())?;
    store.close().await;
    print_json(&created)
}

async fn agent_create(account: &str, name: &str, data_dir: &std::path::Path) -> Result<(), String> {
    let account_id = AccountId::parse(account)
        .ok_or_else(|| format!("`{account}` is not an account id (acct_…)"))?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > crate::domain::MAX_NAME {
        return Err(format!(
            "--name must be 1 to {} characters",
            crate::domain::MAX_NAME
        ));
    }
    let store = Store::open(data_dir).await.map_err(|e| e.to_string())?;
    if !store
        .account_exists(&account_id)
        .await
        .map_err(|e| e.to_string())?
    {
        return Err(format!("no account {account_id}"));
    }
    let created = agents::create_agent(&store, &account_id, name)
        .await
        .map_err(|e| e.public_message())?;
    store.close().await;
    print_json(&created)
}
