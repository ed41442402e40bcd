//! `salve lab shell`: the lab as an OpenSSH `ForceCommand`.
//!
//! sshd runs one process per SSH command, with the client's command line in
//! `SSH_ORIGINAL_COMMAND` (e.g. `powershell.exe -NoProfile -NonInteractive -EncodedCommand
//! ...`). The fleet's state lives as JSON in a state directory (`fleet.json`, created by
//! `salve lab init`) and is guarded by a lock file. A command loads the fleet, runs on the
//! simulated host exactly as a WinRM command would, then merges back only the hosts it changed
//! and the log entries it added, so commands on different hosts can run side by side. A
//! detached task started by the command (`job_control`) runs to its end before the command
//! returns: this process cannot outlive the command as a Windows scheduled task outlives the
//! session that started it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use crate::fleet::{Fleet, FleetSnapshot};
use crate::host_api::{ProcessOutput, SimHost, StdinChunk};

/// Exit status for "could not connect", as the ssh client reports it.
pub const EXIT_UNREACHABLE: i32 = 255;

/// Problems with the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a lab state file: {source}; recreate it with `salve lab init`")]
    Format {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("no host `{0}` in this lab")]
    UnknownHost(String),
    #[error("SSH_ORIGINAL_COMMAND is not set; run `salve lab shell` as an OpenSSH ForceCommand")]
    NoCommand,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateDirError {
    let path = path.to_path_buf();
    move |source| StateDirError::Io {
        action,
        path,
        source,
    }
}

/// The state directory of a process-per-command lab.
pub struct StateDir {
    dir: PathBuf,
}

/// Holds the directory's lock until dropped.
struct Locked(File);

impl Drop for Locked {
    fn drop(&mut self) {
        // Closing the file releases the lock as well; an unlock error changes nothing.
        let _ = self.0.unlock();
    }
}

impl StateDir {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn state_file(&self) -> PathBuf {
        self.dir.join("fleet.json")
    }

    fn lock(&self) -> Result<Locked, StateDirError> {
        let path = self.dir.join("fleet.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("open", &path))?;
        file.lock().map_err(io("lock", &path))?;
        Ok(Locked(file))
    }

    fn read(&self) -> Result<FleetSnapshot, StateDirError> {
        let path = self.state_file();
        let text = std::fs::read_to_string(&path).map_err(io("read", &path))?;
        serde_json::from_str(&text).map_err(|source| StateDirError::Format { path, source })
    }

    fn write(&self, snap: &FleetSnapshot) -> Result<(), StateDirError> {
        let path = self.state_file();
        let tmp = self.dir.join("fleet.json.tmp");
        let json = serde_json::to_vec(snap).map_err(|source| StateDirError::Format {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&tmp, json).map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("replace", &path))
    }

    /// Create (or replace) the state from a fleet.
    pub fn init(&self, fleet: &Fleet) -> Result<(), StateDirError> {
        std::fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        let _guard = self.lock()?;
        self.write(&fleet.snapshot())
    }

    /// Load the fleet (under the lock, released at once).
    pub fn load(&self) -> Result<(Fleet, FleetSnapshot), StateDirError> {
        let snap = {
            let _guard = self.lock()?;
            self.read()?
        };
        Ok((Fleet::from_snapshot(snap.clone()), snap))
    }

    /// Merge what this process changed into the current file: hosts that differ from `before`
    /// and log entries added after it.
    pub fn save(&self, fleet: &Fleet, before: &FleetSnapshot) -> Result<(), StateDirError> {
        let after = fleet.snapshot();
        let _guard = self.lock()?;
        let mut current = self.read()?;
        for (i, host) in after.hosts.iter().enumerate() {
            if before.hosts.get(i) != Some(host)
                && let Some(slot) = current.hosts.get_mut(i)
            {
                *slot = host.clone();
            }
        }
        let mut seq = current.log.len() as u64;
        for mut entry in after.log.into_iter().skip(before.log.len()) {
            seq += 1;
            entry.seq = seq;
            current.log.push(entry);
        }
        self.write(&current)
    }
}

/// Run `SSH_ORIGINAL_COMMAND` on `host`; returns the exit status.
pub fn run(dir: &Path, host: &str, original_command: Option<String>) -> Result<i32, StateDirError> {
    let command = original_command.ok_or(StateDirError::NoCommand)?;
    let state = StateDir::new(dir);
    let (fleet, before) = state.load()?;
    let lab_host = fleet
        .host(host)
        .ok_or_else(|| StateDirError::UnknownHost(host.to_string()))?;
    if !lab_host.accepting() {
        eprintln!("ssh: connect to host {host} port 22: Connection refused");
        return Ok(EXIT_UNREACHABLE);
    }
    let mut words = command.split_whitespace();
    let program = words.next().unwrap_or_default().to_string();
    let arguments: Vec<String> = words.map(str::to_string).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("start a runtime for", dir))?;
    let code = rt.block_on(async {
        let process = lab_host.spawn(&program, &arguments);
        // The channel's data is the process's stdin, whatever the command line says (a
        // bootstrap given by -EncodedCommand reads its script from it). A thread, so that a
        // command that never reads stdin does not wait for the client to close it.
        let stdin = process.stdin.clone();
        std::thread::spawn(move || {
            let mut data = Vec::new();
            // A read error means no more input; the process then sees what arrived so far.
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut data);
            let _ = stdin.send(StdinChunk { data, eof: true });
        });
        let code = relay(process.output).await;
        // A detached task (job_control) would outlive the command on Windows; this process
        // holds the host for one command only, so it lets the task finish before it saves the
        // state: the command returns when the task is done.
        while fleet.state(host).is_some_and(|s| {
            s.jobs
                .iter()
                .any(|j| j.state == salve_contract::contract::JobState::Running)
        }) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        code
    });
    // Leave pending transitions (a scheduled restart) to whoever looks next.
    drop(rt);
    state.save(&fleet, &before)?;
    Ok(code)
}

async fn relay(mut output: mpsc::UnboundedReceiver<ProcessOutput>) -> i32 {
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    while let Some(o) = output.recv().await {
        // Write errors mean sshd closed the channel; the command still runs to its end.
        match o {
            ProcessOutput::Stdout(b) => {
                let _ = stdout.write_all(&b).and_then(|()| stdout.flush());
            }
            ProcessOutput::Stderr(b) => {
                let _ = stderr.write_all(&b).and_then(|()| stderr.flush());
            }
            ProcessOutput::Exit(code) => return code,
        }
    }
    crate::command::EXIT_TERMINATED
}
