//! `deploy/hookhub.service`, checked by systemd's own tools where they are installed:
//! the unit parses with no warning, and its sandboxing stays as tight as it is.

use std::{path::Path, process::Command};

const SHIPPED_UNIT: &str = include_str!("../../deploy/hookhub.service");
/// How the unit starts the installed binary; `systemd-analyze verify` fails when the file
/// it names is not there, so the test points it at the binary it built.
const EXEC_START: &str = "ExecStart=/usr/local/bin/hookhub serve";

/// `systemd-analyze`, if this machine has it.
fn systemd_analyze() -> Option<&'static str> {
    ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// The shipped unit, as `hookhub.service` in a fresh directory, running the built binary.
fn unit_with_built_binary() -> (tempfile::TempDir, std::path::PathBuf) {
    assert_eq!(
        SHIPPED_UNIT.matches(EXEC_START).count(),
        1,
        "the unit has `{EXEC_START}`"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookhub.service");
    std::fs::write(
        &path,
        SHIPPED_UNIT.replace(
            EXEC_START,
            &format!("ExecStart={} serve", env!("CARGO_BIN_EXE_hookhub")),
        ),
    )
    .unwrap();
    (dir, path)
}

#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    let Some(analyze) = systemd_analyze() else {
        eprintln!("systemd-analyze is not installed: deploy/hookhub.service is not verified");
        return;
    };
    let (_dir, unit) = unit_with_built_binary();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    // An unknown or misspelt setting is only a warning, and the exit code stays 0: any
    // line about the unit is a failure. (Lines about other units on the machine are not
    // this unit's to fix.)
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("hookhub.service"))
        .collect();
    assert!(about_unit.is_empty(), "{}", about_unit.join("\n"));
}

/// What systemd's exposure check may find open in the unit, and why each is open. Any
/// other check that fails (ProtectSystem, NoNewPrivileges, the capability set, the
/// system call filter, ...) fails the test: the unit's sandbox can only grow.
const ACCEPTED_EXPOSURES: [(&str, &str); 10] = [
    ("PrivateNetwork=", "it serves the network"),
    ("IPAddressDeny=", "senders come from any address"),
    (
        "RestrictAddressFamilies=~AF_(INET|INET6)",
        "it listens on TCP",
    ),
    (
        "RestrictAddressFamilies=~AF_UNIX",
        "glibc's user and host lookups speak to local sockets",
    ),
    (
        "SystemCallFilter=~@resources",
        "it raises its own descriptor limit (setrlimit) as it starts",
    ),
    (
        "SystemCallFilter=~@privileged",
        "never tried: the hub has not been run under that filter",
    ),
    (
        "RootDirectory=/RootImage=",
        "ProtectSystem=strict already makes the host read-only to it",
    ),
    (
        "ProcSubset=",
        "process metrics may read /proc beyond its own pid",
    ),
    (
        "PrivateUsers=",
        "it adds little once the capability set is empty, and is untried",
    ),
    (
        "DeviceAllow=",
        "PrivateDevices= leaves only the pseudo-devices every process needs",
    ),
];

#[test]
fn the_systemd_unit_keeps_its_sandbox() {
    let Some(analyze) = systemd_analyze() else {
        eprintln!("systemd-analyze is not installed: the unit's sandbox is not checked");
        return;
    };
    let (_dir, unit) = unit_with_built_binary();
    let out = Command::new(analyze)
        .args(["security", "--offline=true", "--json=short"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze runs");
    let Ok(checks) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        // `--offline` came with systemd 252: an older one cannot check a unit it has not
        // loaded.
        eprintln!(
            "systemd-analyze cannot check a unit offline here: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    };
    let checks = checks.as_array().expect("a list of checks");
    assert!(checks.len() > 40, "{checks:?}");
    let open: Vec<&str> = checks
        .iter()
        .filter(|c| c["set"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let unexpected: Vec<&&str> = open
        .iter()
        .filter(|name| !ACCEPTED_EXPOSURES.iter().any(|(n, _)| n == *name))
        .collect();
    assert!(
        unexpected.is_empty(),
        "the unit leaves open what it did not: {unexpected:?}"
    );
    // And systemd did check what the unit most depends on.
    for name in ["ProtectSystem=", "NoNewPrivileges=", "ProtectHome="] {
        assert!(
            checks.iter().any(|c| c["name"] == name && c["set"] == true),
            "{name} is not set: {checks:?}"
        );
    }
}
