//! A lab fleet served in the test process over real WinRM (HTTP and HTTPS with its CA), the
//! inventory that describes it to salve, and a way to run the real `salve` binary against it.
//! Every test that needs a lab fleet or its inventory builds it here: [`fleet`] (simulation
//! only), [`Lab::start`] (served), [`Lab::inventory`] (the inventory, with any host variables
//! a test adds).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use salve::script::{Deliver as _, Delivery, Script};
use salve_lab::fleet::Fleet;
use salve_lab::host_api::{LabProcess, ProtocolEvent, SimHost, StdinChunk};
use salve_lab::inventory::{self, PasswordIn};
use salve_lab::log::LabEvent;
use salve_lab::winrm::{AccessEntry, AccessLog, LabCa};
use salve_lab::{frontends, scenario};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const PASSWORD: &str = "Lab-Passw0rd!";

/// Start `script` on a lab host as salve delivers it: the bootstrap on the command line, the
/// script on stdin. A process that ends without reading its stdin is not an error, as in the
/// transports.
pub fn spawn_delivered(host: &impl SimHost, script: &Script) -> LabProcess {
    let Delivery {
        program,
        arguments,
        stdin,
    } = script.delivery();
    let process = host.spawn(&program, &[arguments]);
    let _ = process.stdin.send(StdinChunk {
        data: stdin.into_bytes(),
        eof: true,
    });
    process
}

/// A fleet from scenario text, not served (the simulation only; the clock starts now).
pub fn fleet(scenario_yaml: &str) -> Fleet {
    fleet_in_block(0, Path::new("scenario.yml"), scenario_yaml)
}

fn fleet_in_block(block: u8, path: &Path, scenario_yaml: &str) -> Fleet {
    let spec = scenario::parse(path, scenario_yaml).unwrap();
    Fleet::new_in_block(&spec, block)
}

pub struct Lab {
    pub fleet: Arc<Fleet>,
    dir: tempfile::TempDir,
    cancel: CancellationToken,
    /// The lab's CA, which also issues client certificates.
    authority: LabCa,
    /// Each host's HTTP listener's access log, in fleet order.
    access: Vec<(String, AccessLog)>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Lab {
    /// A fleet from scenario text, served on 127.`block`.x.y with HTTP and HTTPS listeners.
    pub async fn start(block: u8, scenario_yaml: &str) -> Lab {
        Self::start_in_domain(block, scenario_yaml, None).await
    }

    /// [`Self::start`], the hosts joined to a domain when given (Kerberos, see
    /// [`crate::kerberos_support`]; mapped client certificates).
    pub async fn start_in_domain(
        block: u8,
        scenario_yaml: &str,
        domain: Option<&frontends::Domain>,
    ) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scenario.yml");
        std::fs::write(&path, scenario_yaml).unwrap();
        let fleet = Arc::new(fleet_in_block(block, &path, scenario_yaml));
        let ca = LabCa::generate().unwrap();
        ca.write_pem(&dir.path().join("ca.pem")).unwrap();
        let cancel = CancellationToken::new();
        let fronts = frontends::start_in_domain(&fleet, Some(&ca), domain, &cancel)
            .await
            .unwrap();
        Lab {
            fleet,
            dir,
            cancel,
            authority: ca,
            access: fronts.access,
        }
    }

    /// The fleet's host names, in fleet order.
    pub fn host_names(&self) -> Vec<String> {
        self.fleet
            .hosts()
            .iter()
            .map(|h| h.name().to_string())
            .collect()
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

    /// The requests `host`'s HTTP listener has served so far, in order.
    pub fn access_log(&self, host: &str) -> Vec<AccessEntry> {
        let (_, log) = self.access.iter().find(|(name, _)| name == host).unwrap();
        log.entries()
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A client certificate for `upn` from the lab's CA, written to the lab's folder:
    /// (certificate PEM path, key PEM path).
    pub fn client_certificate(&self, upn: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = self.authority.client_certificate(upn).unwrap();
        (
            self.write(&format!("{upn}.crt.pem"), &cert),
            self.write(&format!("{upn}.key.pem"), &key),
        )
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The fleet's inventory, to adjust and write (see [`LabInventory`]).
    pub fn inventory(&self) -> LabInventory<'_> {
        LabInventory {
            lab: self,
            password: PasswordIn::Reference("env:LAB_PW".into()),
            host_vars: Vec::new(),
        }
    }

    pub fn protocol(&self, host: &str, pred: impl Fn(&ProtocolEvent) -> bool) -> usize {
        self.fleet.log().count(
            host,
            |e| matches!(e, LabEvent::Protocol { event } if pred(event)),
        )
    }
}

/// The inventory the lab writes for its fleet ([`inventory::render`]): the password as a
/// reference to `LAB_PW` (which the `salve*` helpers set) unless [`Self::clear_text`], plus any
/// host variables a test adds.
pub struct LabInventory<'a> {
    lab: &'a Lab,
    password: PasswordIn,
    host_vars: Vec<(String, String, String)>,
}

impl LabInventory<'_> {
    /// The lab's password written in clear text.
    pub fn clear_text(mut self) -> Self {
        self.password = PasswordIn::ClearText;
        self
    }

    /// Give `host` the variable `key: value` (`value` as YAML text), first among its variables.
    pub fn host_var(mut self, host: &str, key: &str, value: &str) -> Self {
        self.host_vars
            .push((host.to_string(), key.to_string(), value.to_string()));
        self
    }

    /// The inventory text.
    pub fn text(&self) -> String {
        let mut text = inventory::render(&self.lab.fleet, &self.password);
        for (host, key, value) in &self.host_vars {
            text = text.replace(
                &format!("        {host}:\n"),
                &format!("        {host}:\n          {key}: {value}\n"),
            );
        }
        text
    }

    /// Write it as `inv.yml` in the lab's folder; returns the path.
    pub fn write(self) -> PathBuf {
        self.lab.write("inv.yml", &self.text())
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

/// Tests run side by side in one binary, so each lab takes its own address block: two tests
/// starting a lab on the same block fail with "address in use" only when they happen to
/// overlap. Every `Lab::start(N, …)`, `start_in_domain(N, …)` and `realm_and_lab(N, …)` in this
/// folder names a different N.
#[test]
fn every_test_lab_has_its_own_address_block() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let mut seen: std::collections::BTreeMap<u32, String> = Default::default();
    let mut clashes = Vec::new();
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"));
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let calls = [
            "Lab::start(",
            "start_in_domain(",
            "realm_and_lab(",
            "one_queued_host(",
        ]
        .iter()
        .flat_map(|call| text.match_indices(call).map(move |(i, _)| i + call.len()));
        for start in calls {
            let rest = text[start..].trim_start();
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let Ok(block) = digits.parse::<u32>() else {
                continue;
            };
            if let Some(first) = seen.insert(block, name.clone()) {
                clashes.push(format!("block {block}: {first} and {name}"));
            }
        }
    }
    assert!(clashes.is_empty(), "{}", clashes.join("\n"));
}
