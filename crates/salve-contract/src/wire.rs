//! The script envelope on the wire: how a PowerShell script and its arguments look when they
//! reach a host, and how its answer comes back. Both sides follow it: salve renders and reads,
//! the lab (playing the host) parses and answers.
//!
//! * A [`Script`] is PowerShell text plus optional arguments. Arguments travel as *data*: a JSON
//!   document, base64-encoded inside a single-quoted literal in a fixed prelude, decoded on the
//!   host into `$SalveArgs`. No value is ever spliced into script text, so no value can inject
//!   code, whatever quotes or `$()` it contains. [`parse_rendered`] is the host's reading of
//!   [`Script::render`].
//! * Scripts shipped with salve start with a `# salve-script: <id>` line ([`ID_MARKER`]). The lab
//!   recognises the id and runs its simulation of that script against the host state.
//! * `-EncodedCommand` carries text as base64 of UTF-16LE ([`encode_command`],
//!   [`decode_command`]); how salve chooses between the command line and stdin is the
//!   controller's business (`salve::script`).
//! * A shipped script answers with one JSON document on a stdout line starting with
//!   [`RESULT_MARKER`]; other output lines are progress, shown to the user as they arrive
//!   ([`extract_result`], [`strip_result`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// Prefix of the stdout line that carries a shipped script's JSON answer.
pub const RESULT_MARKER: &str = "##salve-result## ";

/// First-line marker naming a shipped script.
pub const ID_MARKER: &str = "# salve-script: ";

/// cmd.exe's command-line limit; longer scripts go through stdin.
pub const MAX_COMMAND_LINE: usize = 8191;

const ARGS_PRELUDE_START: &str =
    "$SalveArgs = [System.Text.Encoding]::UTF8.GetString([System.Convert]::FromBase64String('";
const ARGS_PRELUDE_END: &str = "')) | ConvertFrom-Json";
const PREFERENCES: &str =
    "$ErrorActionPreference = 'Stop'\n$ProgressPreference = 'SilentlyContinue'";

/// PowerShell to run on a host, with its arguments kept apart from its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// Shipped script id (`exchange_facts`, ...); `None` for user-written scripts.
    pub id: Option<String>,
    /// The PowerShell body, without the prelude.
    pub body: String,
    /// Arguments, available on the host as `$SalveArgs`.
    pub args: Option<serde_json::Value>,
}

impl Script {
    pub fn raw(body: impl Into<String>) -> Self {
        Self {
            id: None,
            body: body.into(),
            args: None,
        }
    }

    pub fn shipped(
        id: impl Into<String>,
        body: impl Into<String>,
        args: serde_json::Value,
    ) -> Self {
        Self {
            id: Some(id.into()),
            body: body.into(),
            args: Some(args),
        }
    }

    pub fn with_args(mut self, args: serde_json::Value) -> Self {
        self.args = Some(args);
        self
    }

    /// The full PowerShell text as the host will run it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(id) = &self.id {
            out.push_str(ID_MARKER);
            out.push_str(id);
            out.push('\n');
        }
        out.push_str(PREFERENCES);
        out.push('\n');
        if let Some(args) = &self.args {
            out.push_str(ARGS_PRELUDE_START);
            out.push_str(&B64.encode(args.to_string()));
            out.push_str(ARGS_PRELUDE_END);
            out.push('\n');
        }
        out.push_str(&self.body);
        out
    }
}

/// The program name salve invokes on Windows hosts.
pub const POWERSHELL: &str = "powershell.exe";

/// Base64 of the UTF-16LE text, as `-EncodedCommand` wants it.
pub fn encode_command(text: &str) -> String {
    let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    B64.encode(bytes)
}

/// Why a command could not be understood as PowerShell input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("-EncodedCommand value is not valid base64")]
    Base64,
    #[error("-EncodedCommand value is not UTF-16LE text")]
    Utf16,
    #[error("$SalveArgs prelude does not hold base64 JSON: {0}")]
    Args(String),
}

/// Inverse of [`encode_command`].
pub fn decode_command(encoded: &str) -> Result<String, EnvelopeError> {
    let bytes = B64
        .decode(encoded.trim())
        .map_err(|_| EnvelopeError::Base64)?;
    if bytes.len() % 2 != 0 {
        return Err(EnvelopeError::Utf16);
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).map_err(|_| EnvelopeError::Utf16)
}

/// Recover id, arguments and body from rendered script text (the host side of [`Script::render`]).
pub fn parse_rendered(text: &str) -> Result<Script, EnvelopeError> {
    let mut rest = text;
    let mut id = None;
    if let Some(after) = rest.strip_prefix(ID_MARKER) {
        let (line, tail) = after.split_once('\n').unwrap_or((after, ""));
        id = Some(line.trim().to_string());
        rest = tail;
    }
    if let Some(tail) = rest.strip_prefix(PREFERENCES) {
        rest = tail.strip_prefix('\n').unwrap_or(tail);
    }
    let mut args = None;
    if let Some(after) = rest.strip_prefix(ARGS_PRELUDE_START) {
        let (b64, tail) = after
            .split_once(ARGS_PRELUDE_END)
            .ok_or_else(|| EnvelopeError::Args("unterminated prelude".into()))?;
        let json = B64
            .decode(b64)
            .map_err(|e| EnvelopeError::Args(e.to_string()))?;
        args = Some(serde_json::from_slice(&json).map_err(|e| EnvelopeError::Args(e.to_string()))?);
        rest = tail.strip_prefix('\n').unwrap_or(tail);
    }
    Ok(Script {
        id,
        body: rest.to_string(),
        args,
    })
}

/// Where the body of rendered script text begins, when its prelude is exactly what
/// [`Script::render`] writes: an optional id comment line, the preferences, and an optional
/// `$SalveArgs` line whose literal holds only base64 characters. Such a prelude is whole
/// PowerShell statements whatever the arguments (a comment; assignments of single-quoted
/// literals with no quote inside), so the text parses as well as its body does.
pub fn prelude_end(rendered: &str) -> Option<usize> {
    let mut rest = rendered;
    if let Some(after) = rest.strip_prefix(ID_MARKER) {
        rest = &after[after.find('\n')? + 1..];
    }
    rest = rest.strip_prefix(PREFERENCES)?.strip_prefix('\n')?;
    if let Some(after) = rest.strip_prefix(ARGS_PRELUDE_START) {
        let (b64, tail) = after.split_once(ARGS_PRELUDE_END)?;
        if !b64
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            return None;
        }
        rest = tail.strip_prefix('\n')?;
    }
    Some(rendered.len() - rest.len())
}

/// Find a shipped script's JSON answer in its stdout (the last marked line wins).
pub fn extract_result(stdout: &str) -> Option<Result<serde_json::Value, serde_json::Error>> {
    stdout
        .lines()
        .rev()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix(RESULT_MARKER))
        .map(serde_json::from_str)
}

/// Stdout with the result line removed: what the user sees as the script's output.
pub fn strip_result(stdout: &str) -> String {
    stdout
        .lines()
        .filter(|l| !l.starts_with(RESULT_MARKER))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn finds_the_last_result_line() {
        let out = "progress 1\r\n##salve-result## {\"a\":1}\r\nnoise\n##salve-result## {\"a\":2}\n";
        assert_eq!(extract_result(out).unwrap().unwrap(), json!({"a": 2}));
        assert_eq!(strip_result("x\n##salve-result## {}\ny"), "x\ny");
    }

    #[test]
    fn the_prelude_ends_where_the_body_begins_only_when_it_is_rendered_as_is() {
        let s = Script::shipped("exchange_facts", "Get-Date\n", json!({"q": "it's"}));
        let text = s.render();
        assert_eq!(&text[prelude_end(&text).unwrap()..], "Get-Date\n");
        let raw = Script::raw("Write-Output 1").render();
        assert_eq!(&raw[prelude_end(&raw).unwrap()..], "Write-Output 1");
        let quoted = text.replacen("FromBase64String('", "FromBase64String('x'+'", 1);
        assert_eq!(prelude_end(&quoted), None);
        assert_eq!(prelude_end("Write-Output 1"), None);
    }

    proptest! {
        #[test]
        fn any_args_round_trip(key in "[a-z]{1,8}", value in any::<String>(), body in "[ -~\n]{0,200}") {
            let s = Script::raw(body).with_args(json!({ key: value }));
            prop_assert_eq!(parse_rendered(&decode_command(&encode_command(&s.render())).unwrap()).unwrap(), s);
        }
    }
}
