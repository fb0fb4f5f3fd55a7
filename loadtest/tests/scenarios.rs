//! Every scenario at a tiny scale against a hub started from the debug binary: the harness
//! works end to end and finds no loss. Nothing here asserts a time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use serde_json::Value;

/// The hub binary of this workspace's debug build, built by `cargo test --workspace`.
fn hub_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug").join("hookhub");
    assert!(
        bin.is_file(),
        "no hub binary at {}: run `cargo test --workspace` (or `cargo build -p hookhub`) first",
        bin.display()
    );
    bin
}

fn loadtest(args: &[&str]) -> (Output, Option<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("--hub-bin")
        .arg(hub_bin())
        .arg("--json")
        .arg(&json)
        .args(["--drain-timeout", "60"])
        .args(args)
        .output()
        .unwrap();
    let report = std::fs::read(&json)
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap());
    (out, report)
}

/// Runs a scenario that must pass, and returns its report.
fn passing(args: &[&str]) -> Value {
    let (out, report) = loadtest(args);
    assert!(
        out.status.success(),
        "loadtest {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = report.expect("a JSON report");
    assert_eq!(report["passed"], true);
    report
}

/// The phase's verdict shows every accepted delivery received once, in order.
fn assert_no_loss(phase: &Value, expected: u64) {
    let v = &phase["verdict"];
    assert_eq!(v["accepted"], expected, "{v}");
    assert_eq!(v["received"], expected, "{v}");
    for zero in [
        "lost",
        "reordered",
        "misrouted",
        "unknown",
        "post_errors",
        "agent_errors",
    ] {
        assert_eq!(v[zero], 0, "{zero}: {v}");
    }
    assert_eq!(v["acks_committed"], true, "{v}");
    // The hub's own counters agree with what the agents saw.
    assert_eq!(
        phase["hub_metrics"]["ingested"].as_f64(),
        Some(expected as f64)
    );
    assert!(phase["hub_metrics"]["acked"].as_f64().unwrap() >= expected as f64);
}

#[test]
fn ingest_closed_and_open_loop_lose_nothing() {
    let closed = passing(&[
        "ingest",
        "--agents",
        "3",
        "--posters",
        "4",
        "--requests",
        "150",
    ]);
    assert_no_loss(&closed["phases"][0], 150);
    let open = passing(&[
        "ingest",
        "--agents",
        "2",
        "--posters",
        "4",
        "--requests",
        "100",
        "--rate",
        "400",
    ]);
    assert_no_loss(&open["phases"][0], 100);
}

#[test]
fn latency_runs_each_rate_and_loses_nothing() {
    let report = passing(&[
        "latency",
        "--rates",
        "100,300",
        "--seconds",
        "0.5",
        "--agents",
        "2",
        "--posters",
        "8",
    ]);
    let phases = report["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2);
    assert_no_loss(&phases[0], 50);
    assert_no_loss(&phases[1], 150);
    let p50 = phases[0]["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "POST-to-agent p50")
        .unwrap();
    assert!(p50["value"].as_f64().unwrap() > 0.0);
}

#[test]
fn backlog_flushes_everything_in_order() {
    let one = passing(&[
        "backlog",
        "--agents",
        "1",
        "--per-agent",
        "300",
        "--posters",
        "8",
    ]);
    assert_no_loss(&one["phases"][0], 300);
    let many = passing(&[
        "backlog",
        "--agents",
        "20",
        "--per-agent",
        "10",
        "--posters",
        "8",
    ]);
    assert_no_loss(&many["phases"][0], 200);
}

#[test]
fn one_agent_runs_closed_then_open_loop_and_loses_nothing() {
    let report = passing(&[
        "one-agent",
        "--posters",
        "8",
        "--requests",
        "200",
        "--rate",
        "100",
        "--seconds",
        "2",
    ]);
    let phases = report["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2);
    assert_no_loss(&phases[0], 200);
    assert_no_loss(&phases[1], 200);
    for phase in phases {
        let bytes = phase["figures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "hub bytes written per delivery")
            .expect("bytes written per delivery is reported");
        // Every delivery is committed to disk before its 202: it cannot cost nothing.
        assert!(bytes["value"].as_f64().unwrap() > 0.0, "{bytes}");
    }
}

#[test]
fn mcp_drains_everything_in_order_beside_the_socket() {
    let report = passing(&["mcp", "--events", "250", "--posters", "8"]);
    let phases = report["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2, "the MCP phase and the socket phase");
    for phase in phases {
        assert_no_loss(phase, 250);
    }
    let figure = |name: &str| {
        phases[0]["figures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no figure {name}"))["value"]
            .clone()
    };
    // 250 events in batches of 100, then the call that finds none (with the last acks).
    assert_eq!(figure("next_events calls").as_f64(), Some(4.0));
    assert!(figure("next_events round trip p50").as_f64().unwrap() > 0.0);
}

#[test]
fn connections_are_held_and_counted_by_the_hub() {
    let report = passing(&["connections", "--connections", "40", "--idle-seconds", "1"]);
    let phase = &report["phases"][0];
    assert_eq!(phase["hub_metrics"]["connected_agents"], 40.0);
    assert_eq!(phase["verdict"]["agent_errors"], 0);
}

#[test]
fn bad_parameters_are_refused_with_a_clear_error() {
    let cases: [(&[&str], &str); 5] = [
        (&["ingest", "--posters", "0"], "--posters"),
        (&["ingest", "--body-bytes", "10"], "body size"),
        (
            &["ingest", "--requests", "3", "--posters", "8"],
            "fewer than --posters",
        ),
        (&["latency", "--rates", "0"], "rate"),
        (&["connections", "--connections", "lots"], "max"),
    ];
    for (args, expect) in cases {
        let (out, report) = loadtest(args);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(report.is_none());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "--url",
            "http://10.1.2.3:80",
            "--owner-token",
            "x",
            "ingest",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["--hub-bin", "/nonexistent/hookhub", "ingest"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no hub binary"));
}
