//! A lab fleet served in the test process over real WinRM (HTTP and HTTPS with its CA), and a
//! way to run the real `salve` binary against it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use salve_lab::fleet::Fleet;
use salve_lab::host_api::{ProtocolEvent, SimHost};
use salve_lab::log::LabEvent;
use salve_lab::winrm::LabCa;
use salve_lab::{frontends, scenario};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const PASSWORD: &str = "Lab-Passw0rd!";

pub struct Lab {
    pub fleet: Arc<Fleet>,
    dir: tempfile::TempDir,
    cancel: CancellationToken,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Lab {
    /// A fleet from scenario text, served on 127.`block`.x.y with HTTP and HTTPS listeners.
    pub async fn start(block: u8, scenario_yaml: &str) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scenario.yml");
        std::fs::write(&path, scenario_yaml).unwrap();
        let spec = scenario::parse(&path, scenario_yaml).unwrap();
        let fleet = Arc::new(Fleet::new_in_block(&spec, block));
        let ca = LabCa::generate().unwrap();
        ca.write_pem(&dir.path().join("ca.pem")).unwrap();
        let cancel = CancellationToken::new();
        frontends::start(&fleet, Some(&ca), &cancel).await.unwrap();
        Lab { fleet, dir, cancel }
    }

    pub fn address(&self, host: &str) -> String {
        let index = self
            .fleet
            .hosts()
            .iter()
            .position(|h| h.name() == host)
            .unwrap();
        self.fleet.core().address(index).ip().to_string()
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn protocol(&self, host: &str, pred: impl Fn(&ProtocolEvent) -> bool) -> usize {
        self.fleet.log().count(
            host,
            |e| matches!(e, LabEvent::Protocol { event } if pred(event)),
        )
    }
}

/// Run the binary; returns (exit code, JSON events, stdout+stderr text).
pub async fn salve_run(
    playbook: &Path,
    inventory: &Path,
    extra: &[&str],
) -> (i32, Vec<Value>, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(["run", "--json", "--all-tenants"])
        .arg(playbook)
        .arg("-i")
        .arg(inventory)
        .args(extra)
        .env("LAB_PW", PASSWORD)
        .env("NO_PROXY", "127.0.0.0/8")
        .output()
        .await
        .unwrap();
    json_outcome(&out)
}

/// A finished `salve ... --json`: (exit code, JSON events from stdout, stdout+stderr text).
pub fn json_outcome(out: &std::process::Output) -> (i32, Vec<Value>, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let events = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), events, all)
}

/// Run `salve ARGS` (any subcommand) with the lab password in `LAB_PW`; returns (code, stdout).
pub async fn salve(args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(args)
        .env("LAB_PW", PASSWORD)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Like [`salve`], with stderr too: (code, stdout, stderr). `env` adds variables.
pub async fn salve_with(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(args)
        .env("LAB_PW", PASSWORD)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
