//! The command line: `serve`, `account create|list|rotate-token`, `agent create`,
//! `backup`, `listen`, `mcp`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::{
    client::{self, ListenArgs},
    config::Config,
    crypto::{parse_secret, Secret},
    domain::ids::AccountId,
    error::ApiError,
    logging::{self, LogFormat},
    mcp,
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
    /// How log lines are written to stderr: `text` for a person, `json` (one object per
    /// line) for a log system.
    #[arg(long, global = true, env = "HOOKHUB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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
    /// Copy the hub's database to a file, consistently, while the hub serves. The master
    /// key is not in the copy: keep it apart (see README, "Backup and restore").
    Backup(BackupArgs),
    /// Send a sample event to a webhook's URL, shaped and signed as the provider would
    /// send it, and print the answer.
    Trigger(Box<client::trigger::TriggerArgs>),
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

/// The data directory of a hub, for the commands that run beside it (or without it).
#[derive(clap::Args)]
struct DataDir {
    #[arg(long, env = "HOOKHUB_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
}

impl DataDir {
    /// The hub's store, which must exist unless `init`: a mistyped directory would
    /// otherwise get a new, empty database whose tokens the running hub does not know.
    async fn open(&self, init: bool) -> Result<Store, String> {
        if !init && !Store::exists_in(&self.data_dir) {
            return Err(format!(
                "{} holds no hub database; check --data-dir (or HOOKHUB_DATA_DIR), or pass --init to create one there",
                self.data_dir.display()
            ));
        }
        Store::open(&self.data_dir).await.map_err(|e| e.to_string())
    }
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an owner account and print it, with its token, as JSON.
    Create {
        #[arg(long)]
        name: String,
        /// Create the data directory's database if there is none yet.
        #[arg(long)]
        init: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Print every account (never a token) as JSON.
    List {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Give an account a new owner token, printed once as JSON: for an owner who lost
    /// theirs. The old token stops working, and the account's dashboard sessions end.
    RotateToken {
        #[arg(long)]
        account: String,
        #[command(flatten)]
        dir: DataDir,
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
        /// Create the data directory's database if there is none yet.
        #[arg(long)]
        init: bool,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(clap::Args)]
struct BackupArgs {
    /// Where to write the copy: a new file (an existing one is not overwritten).
    #[arg(long)]
    to: PathBuf,
    #[command(flatten)]
    dir: DataDir,
}

pub async fn run(cli: Cli) -> ExitCode {
    let format = cli.log_format;
    let result = match cli.command {
        Command::Serve(config) => serve(*config, format).await,
        Command::Account { command } => match command {
            AccountCommand::Create { name, init, dir } => account_create(&name, &dir, init).await,
            AccountCommand::List { dir } => account_list(&dir).await,
            AccountCommand::RotateToken { account, dir } => {
                account_rotate_token(&account, &dir).await
            }
        },
        Command::Agent {
            command:
                AgentCommand::Create {
                    account,
                    name,
                    init,
                    dir,
                },
        } => agent_create(&account, &name, &dir, init).await,
        Command::Backup(args) => backup(&args).await,
        Command::Listen(args) => client::run(*args).await,
        Command::Mcp(args) => mcp::stdio::run(&args.url, &args.token).await,
        Command::Trigger(args) => client::trigger::run(*args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            match format {
                LogFormat::Text => eprintln!("hookhub: {message}"),
                // A log system reading JSON lines gets the one it most needs as one.
                LogFormat::Json => tracing::error!(error = %message, "hookhub stopped"),
            }
            ExitCode::FAILURE
        }
    }
}

/// A line for whoever started `serve`, on stdout: text, or under `--log-format json` a
/// JSON object like the log's (the message last, so that it ends the line).
fn say(format: LogFormat, line: &str) {
    match format {
        LogFormat::Text => println!("hookhub: {line}"),
        LogFormat::Json => println!(
            r#"{{"timestamp":{},"level":"INFO","target":"hookhub","message":{}}}"#,
            serde_json::Value::from(crate::clock::rfc3339(crate::clock::now_ms())),
            serde_json::Value::from(line)
        ),
    }
}

async fn serve(config: Config, format: LogFormat) -> Result<(), String> {
    survive_file_size_limit();
    let app = Application::build(config)
        .await
        .map_err(|e| e.to_string())?;
    let url = app.public_url().to_owned();
    if let Some(owner) = app.first_owner() {
        // Printed, not logged: it is shown once, to whoever started the hub.
        say(
            format,
            &format!(
                "first start, created the owner account {}",
                owner.account_id
            ),
        );
        say(
            format,
            &format!("owner token (shown once, keep it): {}", owner.token),
        );
    }
    // Before anyone is told the hub listens: they may stop it at once.
    let stop = shutdown::signal();
    // The "listening on" line comes last: whoever waits for it may close stdout then,
    // and a line printed after it would fail.
    match app.admin_addr() {
        Some(admin) => {
            say(
                format,
                &format!("admin listener on http://{admin}  (dashboard, API, /metrics)"),
            );
            say(
                format,
                &format!("listening on {url}  (ingest, agent sockets, MCP)"),
            );
        }
        None => say(format, &format!("listening on {url}  (dashboard: {url}/)")),
    }
    tracing::info!(url = %url, "hookhub started");
    let stop_reports = CancellationToken::new();
    let reports = actix_web::rt::spawn(logging::report_malformed(stop_reports.clone()));
    let served = app.run_until(stop).await;
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

async fn account_create(name: &str, dir: &DataDir, init: bool) -> Result<(), String> {
    let store = dir.open(init).await?;
    let created = accounts::create_account(&store, name)
        .await
        .map_err(|e| e.public_message())?;
    store.close().await;
    print_json(&created)
}

async fn account_list(dir: &DataDir) -> Result<(), String> {
    let store = dir.open(false).await?;
    let listed = accounts::list(&store)
        .await
        .map_err(|e| e.public_message())?;
    store.close().await;
    print_json(&serde_json::json!({ "accounts": listed }))
}

async fn account_rotate_token(account: &str, dir: &DataDir) -> Result<(), String> {
    let account_id = parse_account(account)?;
    let store = dir.open(false).await?;
    let rotated = accounts::replace_token(&store, &account_id, None)
        .await
        .map_err(|e| match e {
            ApiError::NotFound => format!("no account {account_id}"),
            e => e.public_message(),
        })?;
    store.close().await;
    print_json(&rotated)
}

fn parse_account(account: &str) -> Result<AccountId, String> {
    AccountId::parse(account).ok_or_else(|| format!("`{account}` is not an account id (acct_…)"))
}

async fn agent_create(account: &str, name: &str, dir: &DataDir, init: bool) -> Result<(), String> {
    let account_id = parse_account(account)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > crate::domain::MAX_NAME {
        return Err(format!(
            "--name must be 1 to {} characters",
            crate::domain::MAX_NAME
        ));
    }
    let store = dir.open(init).await?;
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

async fn backup(args: &BackupArgs) -> Result<(), String> {
    if args.to.exists() {
        return Err(format!(
            "{} exists; give a new file to write the copy to",
            args.to.display()
        ));
    }
    if !Store::exists_in(&args.dir.data_dir) {
        return Err(format!(
            "{} holds no hub database; check --data-dir (or HOOKHUB_DATA_DIR)",
            args.dir.data_dir.display()
        ));
    }
    let bytes = Store::backup(&args.dir.data_dir, &args.to)
        .await
        .map_err(|e| format!("backup: {e}"))?;
    print_json(&serde_json::json!({
        "backup": args.to.display().to_string(),
        "bytes": bytes,
        "note": "the master key is not in the backup: keep it apart, and restore it with the backup",
    }))
}
