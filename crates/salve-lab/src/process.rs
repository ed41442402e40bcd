//! Commands started on a simulated host: the lab's `powershell.exe`.
//!
//! [`spawn`] takes the command as WS-Man (or the SSH ForceCommand) hands it over, decodes the
//! script (`-EncodedCommand`, `-Command -` with the text on stdin, or `-Command <text>`), and
//! runs either the simulation of a shipped script (by its `# salve-script: <id>` line) or the
//! PowerShell subset for raw scripts. Output is streamed as it is produced; `Exit` comes last.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::command::{EXIT_TERMINATED, Out, read_stdin};
use crate::fleet_core::FleetCore;
use crate::host_api::{LabProcess, ProcessOutput, StdinChunk};
use crate::log::LabEvent;
use crate::powershell::Session;
use crate::typed_input;
use salve_contract::wire::{MAX_COMMAND_LINE, decode_command, parse_rendered};

/// Start a command on host `idx`; `shell_memory_mb`: the memory quota of the WinRM shell it
/// runs in, if any. Needs a tokio runtime.
pub fn spawn(
    core: Arc<FleetCore>,
    idx: usize,
    command: &str,
    arguments: &[String],
    shell_memory_mb: Option<u64>,
) -> LabProcess {
    let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let kill = CancellationToken::new();
    let out = match shell_memory_mb {
        Some(quota) => Out::new(out_tx).in_winrm_shell(quota),
        None => Out::new(out_tx),
    };
    let line = Invocation::parse(command, arguments);
    let token = kill.clone();
    tokio::spawn(async move {
        let code = run(core, idx, line, stdin_rx, &out, token).await;
        out.exit(code);
    });
    LabProcess {
        stdin: stdin_tx,
        output: out_rx,
        kill,
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Script text given on the command line (decoded `-EncodedCommand` or `-Command <text>`).
    Text(String),
    /// `-Command -`: the script comes on stdin.
    Stdin,
    /// The `-EncodedCommand` value could not be decoded.
    BadEncoding(String),
    /// A command line longer than cmd.exe accepts (8,191 characters), with its length.
    TooLong(usize),
    /// `hostname.exe`.
    Hostname,
    /// Any other program: cmd.exe's "is not recognized" answer.
    UnknownProgram(String),
}

impl Invocation {
    pub fn parse(command: &str, arguments: &[String]) -> Invocation {
        // Through the cmd shell (WINRS_SKIP_CMD_SHELL=FALSE) `rsp:Command` may hold a whole
        // command line, as pywinrm's `run_ps` sends it: cmd.exe splits off the program.
        let full = std::iter::once(command)
            .chain(arguments.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let full = full.trim_start();
        // WinRS runs the command through `cmd.exe /c` (and Windows OpenSSH's default shell is
        // cmd.exe): cmd.exe refuses a command line over 8,191 characters.
        if full.chars().count() > MAX_COMMAND_LINE {
            return Invocation::TooLong(full.chars().count());
        }
        let (command, joined) = match full.strip_prefix('"') {
            Some(quoted) => quoted.split_once('"').unwrap_or((quoted, "")),
            None => full.split_once(char::is_whitespace).unwrap_or((full, "")),
        };
        let program = command
            .rsplit(['\\', '/'])
            .next()
            .unwrap_or(command)
            .to_ascii_lowercase();
        let program = program.strip_suffix(".exe").unwrap_or(&program);
        match program {
            "powershell" | "pwsh" => {}
            "hostname" => return Invocation::Hostname,
            _ => return Invocation::UnknownProgram(command.to_string()),
        }
        let mut tokens = joined.split_whitespace();
        let mut rest = Vec::new();
        while let Some(tok) = tokens.next() {
            match tok.to_ascii_lowercase().as_str() {
                "-noprofile" | "-noninteractive" | "-nologo" => {}
                "-executionpolicy" | "-inputformat" | "-outputformat" | "-ep" => {
                    tokens.next();
                }
                "-encodedcommand" | "-enc" | "-e" | "-ec" => {
                    let value = tokens.next().unwrap_or_default();
                    return match decode_command(value) {
                        Ok(text) => Invocation::Text(text),
                        Err(e) => Invocation::BadEncoding(e.to_string()),
                    };
                }
                "-command" | "-c" => {
                    rest.extend(tokens.by_ref());
                    break;
                }
                _ => {
                    rest.push(tok);
                    rest.extend(tokens.by_ref());
                    break;
                }
            }
        }
        if rest == ["-"] {
            Invocation::Stdin
        } else {
            Invocation::Text(rest.join(" "))
        }
    }
}

async fn run(
    core: Arc<FleetCore>,
    idx: usize,
    line: Invocation,
    mut stdin: mpsc::UnboundedReceiver<StdinChunk>,
    out: &Out,
    kill: CancellationToken,
) -> i32 {
    match line {
        Invocation::Text(text) => {
            Session::new(&core, idx, out, &kill, Some(stdin))
                .run_program(&text)
                .await
        }
        Invocation::Stdin => match read_stdin(&mut stdin, &kill).await {
            Some(data) => run_typed(&core, idx, &out.console().decode(&data), out, &kill).await,
            None => EXIT_TERMINATED,
        },
        Invocation::BadEncoding(e) => {
            out.stderr(&format!("Cannot process the command because the value of -EncodedCommand is invalid: {e}\r\n"));
            1
        }
        Invocation::TooLong(length) => {
            core.record(idx, LabEvent::CommandLineTooLong { length });
            out.stderr("The command line is too long.\r\n");
            1
        }
        Invocation::Hostname => {
            out.line(core.name(idx));
            0
        }
        Invocation::UnknownProgram(p) => {
            out.stderr(&format!(
                "'{p}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
            ));
            1
        }
    }
}

/// `-Command -`: the script as the console host reads it ([`typed_input`]). A shipped script
/// runs its simulation only if PowerShell would run all of it; when its last block was
/// dropped it does nothing visible, as on Windows.
async fn run_typed(
    core: &Arc<FleetCore>,
    idx: usize,
    text: &str,
    out: &Out,
    kill: &CancellationToken,
) -> i32 {
    let mut session = Session::new(core, idx, out, kill, None);
    let script = match parse_rendered(text) {
        Ok(s) => s,
        Err(_) => return session.run_typed(&typed_input::read(text).statements).await,
    };
    let typed = typed_input::read(&script.body);
    if let Some(dropped) = &typed.dropped {
        core.record(
            idx,
            LabEvent::InputDropped {
                lines: dropped.lines().count(),
            },
        );
    }
    match (&script.id, &typed.dropped) {
        (Some(_), None) => session.run_program(text).await,
        // Its functions were defined, its final block never ran.
        (Some(_), Some(_)) => 0,
        (None, _) => {
            core.record(
                idx,
                LabEvent::ScriptStarted {
                    id: "raw".to_string(),
                },
            );
            session.adopt_prelude(text, &script);
            session.run_typed(&typed.statements).await
        }
    }
}

/// Run a command to completion and collect its output (for the SSH shell and tests).
pub async fn collect(mut process: LabProcess) -> (Vec<u8>, Vec<u8>, i32) {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(o) = process.output.recv().await {
        match o {
            ProcessOutput::Stdout(b) => stdout.extend(b),
            ProcessOutput::Stderr(b) => stderr.extend(b),
            ProcessOutput::Exit(code) => return (stdout, stderr, code),
        }
    }
    (stdout, stderr, EXIT_TERMINATED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use salve_contract::wire::encode_command;

    fn args(s: &str) -> Vec<String> {
        vec![s.to_string()]
    }

    #[test]
    fn splits_a_whole_command_line_like_cmd() {
        let enc = encode_command("hostname");
        let pywinrm = Invocation::parse(&format!("powershell -encodedcommand {enc}"), &[]);
        assert_eq!(pywinrm, Invocation::Text("hostname".into()));
        let quoted = Invocation::parse(
            &format!(
                "\"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\" -enc {enc}"
            ),
            &[],
        );
        assert_eq!(quoted, Invocation::Text("hostname".into()));
    }

    #[test]
    fn parses_powershell_command_lines() {
        let enc = encode_command("Write-Output 1");
        let inv = Invocation::parse(
            "powershell.exe",
            &args(&format!("-NoProfile -NonInteractive -EncodedCommand {enc}")),
        );
        assert_eq!(inv, Invocation::Text("Write-Output 1".into()));
        let split = ["-NoProfile".to_string(), "-encodedcommand".to_string(), enc];
        assert_eq!(
            Invocation::parse(
                "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\PowerShell.exe",
                &split
            ),
            inv
        );
        assert_eq!(
            Invocation::parse("powershell", &args("-NoProfile -Command -")),
            Invocation::Stdin
        );
        assert_eq!(
            Invocation::parse("powershell", &args("-Command echo hi")),
            Invocation::Text("echo hi".into())
        );
        assert!(matches!(
            Invocation::parse("powershell", &args("-EncodedCommand !!")),
            Invocation::BadEncoding(_)
        ));
        assert_eq!(
            Invocation::parse("ipconfig", &[]),
            Invocation::UnknownProgram("ipconfig".into())
        );
    }
}
