//! How salve sends PowerShell to a host: the controller's side of the script envelope.
//!
//! The envelope itself (rendering, `$SalveArgs`, markers, `-EncodedCommand` encoding, reading
//! the answer line) is the wire contract both salve and the lab follow, in
//! [`salve_contract::wire`], re-exported here. This module adds what only the controller
//! decides:
//!
//! * [`Deliver`]: how a rendered script is handed to `powershell.exe`: one path for every
//!   script, whatever its length — a short [`BOOTSTRAP`] as `-EncodedCommand` that switches the
//!   console to UTF-8, reads the whole script from stdin and runs it as one script block.
//! * [`shipped_text`]: the PowerShell files shipped with salve (`scripts/<id>.ps1`).
//! * A [`ReadOnlyScript`] is a shipped script whose id is declared read-only
//!   ([`ScriptId::read_only`]): the only kind check mode can run.

pub use salve_contract::wire::{
    EnvelopeError, ID_MARKER, MAX_COMMAND_LINE, POWERSHELL, RESULT_MARKER, Script, decode_command,
    encode_command, extract_result, parse_rendered, strip_result,
};

use crate::contract::{ReadOnlyId, ScriptId};

/// What salve starts on the host for a script: `powershell.exe` with the [`BOOTSTRAP`] as its
/// `-EncodedCommand`, and the script itself on stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `powershell.exe`.
    pub program: String,
    /// `-NoProfile -NonInteractive -EncodedCommand <bootstrap>`: the same for every script.
    pub arguments: String,
    /// The script, wrapped in `& { ... }` (see [`BOOTSTRAP`]), as UTF-8.
    pub stdin: String,
}

/// The PowerShell every script starts with, given as `-EncodedCommand` (a few hundred
/// characters, far below cmd.exe's 8,191):
///
/// 1. switch the console's input and output code pages to UTF-8 (inside `try`, since a process
///    without a console cannot change them), so the script text is read, and its output and
///    errors written, as UTF-8 instead of the OEM code page;
/// 2. read all of stdin (`$input | Out-String`) and run it as one script block.
///
/// Windows PowerShell parses a script block whole before running any of it, so the script
/// either runs whole or fails loudly with a parse error. (Given as `-Command -` instead, stdin
/// would be read as typed input, and a final multi-line block with no empty line after it
/// dropped with exit code 0.) The script arrives wrapped in `& { ... }`: if the input were cut
/// short, the closing brace would be missing and the block would not parse, so a truncated
/// script can never run in part. This is the approach of Ansible's PowerShell bootstrap.
pub const BOOTSTRAP: &str = "try { [Console]::InputEncoding = [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false } catch { $null = $_ }\n& ([ScriptBlock]::Create(($input | Out-String)))\n";

/// How to hand a [`Script`] to `powershell.exe` (a trait because [`Script`] is the contract
/// crate's type and delivery is salve's choice).
pub trait Deliver {
    /// The program, its arguments and its stdin for this script.
    fn delivery(&self) -> Delivery;
}

impl Deliver for Script {
    fn delivery(&self) -> Delivery {
        Delivery {
            program: POWERSHELL.to_string(),
            arguments: format!(
                "-NoProfile -NonInteractive -EncodedCommand {}",
                encode_command(BOOTSTRAP)
            ),
            stdin: format!("& {{\n{}\n}}\n", self.render()),
        }
    }
}

/// The PowerShell text shipped for a script id (the file `scripts/<id>.ps1`, compiled in).
pub fn shipped_text(id: ScriptId) -> &'static str {
    match id {
        ScriptId::ExchangeFacts => include_str!("../scripts/exchange_facts.ps1"),
        ScriptId::ExchangeMitigate => include_str!("../scripts/exchange_mitigate.ps1"),
        ScriptId::ExchangeUpdate => include_str!("../scripts/exchange_update.ps1"),
        ScriptId::ExchangeMaintenance => include_str!("../scripts/exchange_maintenance.ps1"),
        ScriptId::Reboot => include_str!("../scripts/reboot.ps1"),
        ScriptId::BootId => include_str!("../scripts/boot_id.ps1"),
        ScriptId::ExchangeVerify => include_str!("../scripts/exchange_verify.ps1"),
        ScriptId::ExchangeIocScan => include_str!("../scripts/exchange_ioc_scan.ps1"),
        ScriptId::ExchangeHealth => include_str!("../scripts/exchange_health.ps1"),
        ScriptId::JobControl => include_str!("../scripts/job_control.ps1"),
        ScriptId::JobPoll => include_str!("../scripts/job_poll.ps1"),
    }
}

/// A shipped script that only reads the host: the only kind of script check mode can run
/// (through [`crate::modules::Probe`]).
///
/// The one way to make one is [`ReadOnlyScript::shipped`], from a [`ReadOnlyId`]: the text is
/// always salve's own, and a state-changing script has no [`ReadOnlyId`]. There is no
/// constructor from text or from a [`Script`], and the field is private:
///
/// ```compile_fail,E0451
/// use salve::contract::ReadOnlyId;
/// use salve::script::{ReadOnlyScript, Script};
/// let _ = ReadOnlyScript {
///     id: ReadOnlyId::ExchangeFacts,
///     script: Script::raw("Restart-Computer -Force"),
/// };
/// ```
///
/// ```compile_fail,E0308
/// use salve::contract::ScriptId;
/// use salve::script::ReadOnlyScript;
/// let _ = ReadOnlyScript::shipped(ScriptId::ExchangeUpdate, serde_json::json!({}));
/// ```
///
/// ```compile_fail,E0599
/// use salve::contract::ReadOnlyId;
/// use salve::script::ReadOnlyScript;
/// let _ = ReadOnlyScript::shipped(ReadOnlyId::Reboot, serde_json::json!({}));
/// ```
///
/// ```compile_fail,E0277
/// use salve::script::{ReadOnlyScript, Script};
/// let _: ReadOnlyScript = Script::raw("Stop-Service MSExchangeIS").into();
/// ```
///
/// ```
/// use salve::contract::{ReadOnlyId, ScriptId};
/// use salve::script::ReadOnlyScript;
/// let facts = ReadOnlyScript::shipped(ReadOnlyId::ExchangeFacts, serde_json::json!({}));
/// assert_eq!(facts.id(), ScriptId::ExchangeFacts);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOnlyScript {
    id: ReadOnlyId,
    script: Script,
}

impl ReadOnlyScript {
    /// The shipped script `id` with `args` as `$SalveArgs` (data, never code).
    pub fn shipped(id: ReadOnlyId, args: serde_json::Value) -> Self {
        let shipped = id.script_id();
        ReadOnlyScript {
            id,
            script: Script::shipped(shipped.as_str(), shipped_text(shipped), args),
        }
    }

    /// Which shipped script this is.
    pub fn id(&self) -> ScriptId {
        self.id.script_id()
    }

    /// The script, to hand to a transport.
    pub fn into_script(self) -> Script {
        self.script
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_bootstrap_is_on_the_command_line_and_the_script_on_stdin() {
        let s = Script::shipped(
            "exchange_facts",
            "Write-Output 1",
            json!({"path": "C:\\x 'y' $(evil)"}),
        );
        let d = s.delivery();
        assert_eq!(d.program, POWERSHELL);
        let encoded = d.arguments.rsplit(' ').next().unwrap();
        assert_eq!(decode_command(encoded).unwrap(), BOOTSTRAP);
        assert!(d.program.len() + 1 + d.arguments.len() < MAX_COMMAND_LINE / 8);
        assert!(
            !d.stdin.contains("$(evil)"),
            "argument values must not appear in script text"
        );
        let inner = d
            .stdin
            .strip_prefix("& {\n")
            .and_then(|t| t.strip_suffix("\n}\n"))
            .unwrap();
        assert_eq!(parse_rendered(inner).unwrap(), s);
    }

    #[test]
    fn the_windows_tests_run_this_bootstrap() {
        assert_eq!(
            include_str!("../tests/windows/bootstrap.ps1"),
            BOOTSTRAP,
            "tests/windows/bootstrap.ps1 must be salve's bootstrap, byte for byte"
        );
    }

    #[test]
    fn every_id_has_its_own_script_marked_with_that_id() {
        for id in ScriptId::ALL {
            let first = shipped_text(id).lines().next().unwrap();
            assert_eq!(first, format!("{ID_MARKER}{}", id.as_str()));
        }
    }

    #[test]
    fn read_only_scripts_are_the_shipped_text_of_their_id() {
        for id in ScriptId::ALL.into_iter().filter_map(ScriptId::read_only) {
            let s = ReadOnlyScript::shipped(id, json!({"x": "$(Restart-Computer)"}));
            assert_eq!(s.id(), id.script_id());
            assert!(s.id().is_read_only());
            let script = s.into_script();
            assert_eq!(script.id.as_deref(), Some(id.script_id().as_str()));
            assert_eq!(script.body, shipped_text(id.script_id()));
            assert!(!script.render().contains("Restart-Computer"));
        }
    }
}
