//! A hub run as the real binary in a child process, for what only a process can show:
//! `kill -9`, SIGTERM, restarts on the same data directory.

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct HubProcess {
    child: Child,
    pub port: u16,
    /// Printed on the first start of an empty data directory only.
    pub owner_token: Option<String>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl HubProcess {
    /// Starts `hookhub serve` and waits until it listens.
    pub fn start(data_dir: &Path, port: u16, extra: &[&str]) -> Self {
        let stderr = if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        Self::start_with(data_dir, port, extra, stderr, "info")
    }

    /// Starts `hookhub serve` with its logs (at `log_filter`) going to `stderr`.
    pub fn start_with(
        data_dir: &Path,
        port: u16,
        extra: &[&str],
        stderr: Stdio,
        log_filter: &str,
    ) -> Self {
        Self::start_under(&[], data_dir, port, extra, stderr, log_filter)
    }

    /// Starts `hookhub serve` as the last argument of `wrapper` (a command such as
    /// `prlimit --nofile=256`), or directly when `wrapper` is empty.
    pub fn start_under(
        wrapper: &[&str],
        data_dir: &Path,
        port: u16,
        extra: &[&str],
        stderr: Stdio,
        log_filter: &str,
    ) -> Self {
        let bin = env!("CARGO_BIN_EXE_hookhub");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = command
            .env("RUST_LOG", log_filter)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("hookhub starts");
        let stdout = child.stdout.take().unwrap();
        let mut owner_token = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("stdout line");
            // The token's own characters: the line may be a JSON object (--log-format json).
            if let Some(i) = line.find("hh_owner_") {
                let token: String = line[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                    .collect();
                owner_token = Some(token);
            }
            if line.contains("listening on") {
                break;
            }
        }
        // The port accepts before the first request is served; wait until it answers.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "hub did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            owner_token,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's resident memory, in bytes, from `/proc`.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// The bytes of every file under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dir_size(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// The bytes of the database's files in a data directory: the database, its WAL and its
/// shared memory, for tests that look for what must never be stored.
pub fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("hookhub.db")
        {
            bytes.extend(std::fs::read(path).unwrap());
        }
    }
    bytes
}
