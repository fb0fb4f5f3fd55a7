//! The official MCP Python SDK as a client of the hub: `tests/mcp/driver.py`, run with the
//! venv `scripts/test` makes, and spoken to in JSON lines (see the script).

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
};

pub struct McpClient {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

/// The venv's Python: `HOOKHUB_TEST_PYTHON`, or where `scripts/test` puts it.
fn python() -> PathBuf {
    let path = std::env::var_os("HOOKHUB_TEST_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/mcp-venv/bin/python"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "no Python with the MCP SDK at {}: run scripts/test, which installs it",
        path.display()
    );
    path
}

impl McpClient {
    pub fn start() -> Self {
        let driver = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/driver.py");
        let mut child = Command::new(python())
            .arg(driver)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .expect("the MCP driver starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// Over Streamable HTTP, as the agent whose token this is; the SDK picks the revision.
    pub async fn http(base: &str, token: &str) -> Self {
        Self::http_with_mode(base, token, "auto").await
    }

    pub async fn http_with_mode(base: &str, token: &str, mode: &str) -> Self {
        let mut c = Self::start();
        let url = format!("{base}/v1/mcp");
        let r = c
            .send(json!({"op": "connect", "url": url, "token": token, "mode": mode}))
            .await;
        assert!(r.get("ok").is_some(), "connect: {r}");
        c
    }

    /// Over stdio: the SDK starts `hookhub mcp` with the hub's URL and the token.
    pub async fn stdio(base: &str, token: &str) -> Self {
        let mut c = Self::start();
        let r = c
            .send(json!({
                "op": "connect_stdio",
                "command": env!("CARGO_BIN_EXE_hookhub"),
                "url": base,
                "token": token,
            }))
            .await;
        assert!(r.get("ok").is_some(), "connect: {r}");
        c
    }

    /// Sends a command without waiting for its answer.
    pub async fn send_only(&mut self, cmd: Value) {
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The answer to the command sent before.
    pub async fn answer(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(90), self.stdout.next_line())
            .await
            .expect("the MCP driver answers within 90 s")
            .unwrap()
            .expect("the MCP driver is still running");
        serde_json::from_str(&line).unwrap()
    }

    pub async fn send(&mut self, cmd: Value) -> Value {
        self.send_only(cmd).await;
        self.answer().await
    }

    /// The tools as the SDK lists them.
    pub async fn tools(&mut self) -> Vec<Value> {
        let r = self.send(json!({"op": "list_tools"})).await;
        r["ok"]["tools"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("{r}"))
    }

    /// A tool's result as the SDK returns it (`content`, `structuredContent`, `isError`),
    /// or a JSON-RPC error (`rpcError`).
    pub async fn call(&mut self, tool: &str, args: Value) -> Value {
        self.send(json!({"op": "call", "tool": tool, "args": args}))
            .await
    }

    /// A call that must succeed: its structured result, which must also be its text.
    pub async fn ok(&mut self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args.clone()).await;
        let result = &r["ok"];
        assert_eq!(result["isError"], json!(false), "{tool} {args}: {r}");
        let text: Value =
            serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(
            text, result["structuredContent"],
            "{tool}: text and structure differ"
        );
        result["structuredContent"].clone()
    }

    /// A call that must be a tool error: its `error` object (`code`, `message`, `field`?).
    pub async fn err(&mut self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args.clone()).await;
        let result = &r["ok"];
        assert_eq!(result["isError"], json!(true), "{tool} {args}: {r}");
        let text: Value =
            serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(
            text, result["structuredContent"],
            "{tool}: text and structure differ"
        );
        result["structuredContent"]["error"].clone()
    }

    pub async fn close(mut self) {
        let _ = self.send(json!({"op": "close"})).await;
        let _ = self.child.wait().await;
    }
}
