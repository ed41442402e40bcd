//! What a running simulated command works with, whichever simulation runs it (a shipped
//! script's in `scripts`, the PowerShell subset in `powershell`): where its
//! output goes ([`Out`]: stdout lines, CLIXML error records on stderr, the result line, the
//! exit), how it waits on the lab's clock ([`sim_sleep`]) and the exit code of a command that
//! was stopped ([`EXIT_TERMINATED`]).
//!
//! It sits below `process` (which starts commands and picks the simulation) so that
//! the simulations never import the process module that imports them.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::codepage::Console;
use crate::fleet_core::FleetCore;
use crate::host_api::{ProcessOutput, StdinChunk};
use crate::shares::{Caller, ShareLogon};

/// Exit code of a process stopped by Ctrl-C / terminate (`STATUS_CONTROL_C_EXIT`).
pub const EXIT_TERMINATED: i32 = 0xC000_013Au32 as i32;

/// Where a command writes its output, encoded in the process's console code page.
#[derive(Debug, Clone)]
pub struct Out {
    tx: mpsc::UnboundedSender<ProcessOutput>,
    console: Console,
    /// The process's logon holds credentials it can use on other machines.
    network_credentials: bool,
    /// The logon's account, when it holds network credentials.
    account: Option<String>,
    /// A connection to a package share made with explicit credentials.
    share_logon: Option<ShareLogon>,
    /// The bearer token job_control left for a package salve serves.
    download_token: Option<String>,
    /// The memory quota (MB) of the WinRM shell the process runs in, if it runs in one.
    shell_memory_mb: Option<u64>,
}

impl Out {
    pub fn new(tx: mpsc::UnboundedSender<ProcessOutput>) -> Self {
        Self {
            tx,
            console: Console::default(),
            network_credentials: false,
            account: None,
            share_logon: None,
            download_token: None,
            shell_memory_mb: None,
        }
    }

    /// A process started in a WinRM shell: it belongs to the shell's job object, whose
    /// processes together may use at most `max_memory_mb` (MaxMemoryPerShellMB).
    pub fn in_winrm_shell(mut self, max_memory_mb: u64) -> Self {
        self.shell_memory_mb = Some(max_memory_mb);
        self
    }

    /// Grow this process (with its children) to `mb` of memory. Windows rule: WinRM's
    /// MaxMemoryPerShellMB (default 1,024 MB) caps the memory of every process in a shell
    /// together; a shell that grows past it has its processes stopped. `Err` with the quota
    /// when that happens; outside a WinRM shell (a scheduled task, SSH) nothing caps it.
    pub fn grow_to(&self, mb: u64) -> Result<(), u64> {
        match self.shell_memory_mb {
            Some(quota) if mb > quota => Err(quota),
            _ => Ok(()),
        }
    }

    /// A process that was left the token for a package salve serves (`download.token`).
    pub fn with_download_token(mut self, token: String) -> Self {
        self.download_token = Some(token);
        self
    }

    /// The token for a package salve serves, if this process was left one.
    pub fn download_token(&self) -> Option<&str> {
        self.download_token.as_deref()
    }

    /// A process that connected to a share with explicit credentials (`New-PSDrive
    /// -Credential`): it reads that share as the account given.
    pub fn with_share_logon(mut self, logon: ShareLogon) -> Self {
        self.share_logon = Some(logon);
        self
    }

    /// A process whose logon has network credentials: a scheduled task registered with an
    /// account's password. A WinRM or SSH logon (NTLM, Kerberos without delegation, a key) is
    /// a network logon and has none: it cannot authenticate to a second machine.
    /// `account` is who the process is on other machines.
    pub fn with_network_credentials(mut self, account: &str) -> Self {
        self.network_credentials = true;
        self.account = Some(account.to_string());
        self
    }

    /// Whether this process holds network credentials (a logon with a password: a scheduled
    /// task registered with the `become` account's), so the domain can authorise it.
    pub fn has_network_credentials(&self) -> bool {
        self.network_credentials
    }

    /// Read a file at `path` as this process: a path on another machine's share
    /// (`\\server\share\...`) needs network credentials and the share's permission, or
    /// Windows answers "Access is denied" (the double hop; see [`crate::shares`]).
    pub fn read_file(&self, core: &FleetCore, path: &str) -> Result<(), String> {
        let caller = Caller {
            account: self.account.as_deref().filter(|_| self.network_credentials),
            explicit: self.share_logon.as_ref(),
        };
        core.shares.read(path, caller, core.credentials())
    }

    /// The process's console encodings.
    pub fn console(&self) -> &Console {
        &self.console
    }

    // A closed receiver means the client went away; output is then dropped, as on Windows.
    fn send(&self, o: ProcessOutput) {
        let _ = self.tx.send(o);
    }

    /// One stdout line (CRLF, as Windows writes it).
    pub fn line(&self, text: &str) {
        self.send(ProcessOutput::Stdout(
            self.console.encode(&format!("{text}\r\n")),
        ));
    }

    /// Text on stderr.
    pub fn stderr(&self, text: &str) {
        self.send(ProcessOutput::Stderr(self.console.encode(text)));
    }

    /// A PowerShell error record on stderr, CLIXML-serialized as when stderr is redirected;
    /// with every stream merged into the output (a detached task), its text on the output.
    pub fn error(&self, lines: &[String]) {
        if self.console.merged() {
            lines.iter().for_each(|l| self.line(l));
            return;
        }
        self.stderr(&clixml_error(lines));
    }

    /// The `##salve-result## <json>` line.
    pub fn result(&self, value: &impl serde::Serialize) {
        match serde_json::to_string(value) {
            Ok(json) => self.line(&format!("{}{json}", salve_contract::wire::RESULT_MARKER)),
            Err(e) => self.error(&[format!("ConvertTo-Json : {e}")]),
        }
    }

    pub(crate) fn exit(&self, code: i32) {
        self.send(ProcessOutput::Exit(code));
    }
}

/// All of a process's redirected stdin, up to the client's end of input; `None` when the
/// process is killed first.
pub async fn read_stdin(
    rx: &mut mpsc::UnboundedReceiver<StdinChunk>,
    kill: &CancellationToken,
) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(c) => {
                    data.extend_from_slice(&c.data);
                    if c.eof {
                        break;
                    }
                }
                None => break,
            },
            () = kill.cancelled() => return None,
        }
    }
    Some(data)
}

/// Sleep `sim` simulated time unless killed first; `false` when killed.
pub async fn sim_sleep(core: &FleetCore, sim: Duration, kill: &CancellationToken) -> bool {
    tokio::select! {
        () = core.clock.sleep(sim) => true,
        () = kill.cancelled() => false,
    }
}

/// Serialize error lines as Windows PowerShell writes an error record to a redirected stderr.
pub fn clixml_error(lines: &[String]) -> String {
    let mut out = String::from(
        "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\">",
    );
    for line in lines.iter().flat_map(|l| l.split("\r\n")) {
        out.push_str("<S S=\"Error\">");
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                // Only an underscore that could start an `_xHHHH_` escape is itself escaped.
                '_' if chars.peek() == Some(&'x') => out.push_str("_x005F_"),
                c if (c as u32) < 0x20 => out.push_str(&format!("_x{:04X}_", c as u32)),
                c => out.push(c),
            }
        }
        out.push_str("_x000D__x000A_</S>");
    }
    out.push_str("</Objs>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clixml_escapes() {
        let x = clixml_error(&["a<b>_c_x".to_string()]);
        assert!(x.starts_with("#< CLIXML\r\n<Objs"));
        assert!(
            x.contains("<S S=\"Error\">a&lt;b&gt;_c_x005F_x_x000D__x000A_</S>"),
            "{x}"
        );
    }
}
