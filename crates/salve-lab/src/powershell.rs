//! The lab's PowerShell engine: one [`Session`] per `powershell.exe` process.
//!
//! A session runs script text the way Windows PowerShell does: it parses it whole first
//! (PowerShell's grammar, [`crate::ps_grammar`]) and refuses text that does not parse; a
//! shipped script (by its `# salve-script:` line) runs its simulation in [`crate::scripts`];
//! anything else runs statement by statement. Beyond the simple statements below it knows the
//! forms a delivery bootstrap uses — `[Console]::InputEncoding`/`OutputEncoding` assignments
//! (the console code pages, [`crate::codepage`]), `$input | Out-String` (all of redirected
//! stdin, once), `& ([ScriptBlock]::Create(...))` and `& { ... }` — and `try`/`catch`/`finally`
//! and `if`/`elseif`/`else` blocks with simple conditions.
//!
//! Simple statements: enough for the raw-task features of a playbook and for protocol tests: `Write-Output` (and
//! `echo`, `write`), `Write-Host`, `Write-Error`, `exit N`, `Start-Sleep -Seconds/-Milliseconds`
//! (simulated time), `hostname`, `$env:COMPUTERNAME`, `$PSVersionTable.PSVersion`,
//! `$SalveArgs.<field>`, simple `$name = value` assignments, string interpolation in double
//! quotes, comments, and statements separated by newlines or semicolons.
//!
//! Anything else fails the way Windows PowerShell 5.1 does: "The term 'X' is not recognized
//! ..." as an error record on stderr, serialized as CLIXML (`#< CLIXML`) because stderr is
//! redirected, and exit code 1. Nothing is silently ignored. With `$ErrorActionPreference =
//! 'Stop'` (which salve's prelude sets) the first error ends the script.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::command::{EXIT_TERMINATED, Out, read_stdin, sim_sleep};
use crate::fleet_core::FleetCore;
use crate::host_api::StdinChunk;
use crate::log::LabEvent;
use crate::{ps_grammar, scripts};
use salve_contract::contract::ScriptId;
use salve_contract::wire::{Script, parse_rendered};

/// A token of one statement.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A bare word (command name, parameter, number, variable reference).
    Word(String),
    /// A single-quoted (verbatim) string.
    Verbatim(String),
    /// A double-quoted (expandable) string, still unexpanded.
    Expandable(String),
}

/// One statement with its source position (1-based) and text.
#[derive(Debug, Clone, PartialEq)]
struct Statement {
    line: usize,
    column: usize,
    text: String,
    tokens: Vec<Tok>,
}

/// Split script text into statements (newlines and `;` outside quotes), dropping comments.
fn statements(body: &str) -> Result<Vec<Statement>, ParseError> {
    let mut out = Vec::new();
    for (n, raw_line) in body.lines().enumerate() {
        let chars: Vec<char> = raw_line.chars().collect();
        let mut i = 0;
        let mut current = Statement {
            line: n + 1,
            column: 0,
            text: String::new(),
            tokens: Vec::new(),
        };
        let mut start_text = 0;
        let flush = |st: &mut Statement, end: usize, out: &mut Vec<Statement>, from: usize| {
            if !st.tokens.is_empty() {
                st.text = chars[from..end]
                    .iter()
                    .collect::<String>()
                    .trim()
                    .to_string();
                out.push(st.clone());
            }
            st.tokens.clear();
            st.column = 0;
        };
        while i < chars.len() {
            let c = chars[i];
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            if current.tokens.is_empty() && current.column == 0 {
                current.column = i + 1;
                start_text = i;
            }
            match c {
                '#' => break,
                ';' => {
                    flush(&mut current, i, &mut out, start_text);
                    i += 1;
                }
                '\'' => {
                    let mut s = String::new();
                    i += 1;
                    loop {
                        match chars.get(i) {
                            None => return Err(unterminated(n + 1, "'")),
                            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                                s.push('\'');
                                i += 2;
                            }
                            Some('\'') => {
                                i += 1;
                                break;
                            }
                            Some(&ch) => {
                                s.push(ch);
                                i += 1;
                            }
                        }
                    }
                    current.tokens.push(Tok::Verbatim(s));
                }
                '"' => {
                    let mut s = String::new();
                    i += 1;
                    loop {
                        match chars.get(i) {
                            None => return Err(unterminated(n + 1, "\"")),
                            Some('`') => {
                                let esc = chars.get(i + 1).copied().unwrap_or('`');
                                s.push(match esc {
                                    'n' => '\n',
                                    't' => '\t',
                                    'r' => '\r',
                                    '0' => '\0',
                                    other => other,
                                });
                                i += 2;
                            }
                            Some('"') => {
                                i += 1;
                                break;
                            }
                            Some(&ch) => {
                                s.push(ch);
                                i += 1;
                            }
                        }
                    }
                    current.tokens.push(Tok::Expandable(s));
                }
                _ => {
                    let mut s = String::new();
                    while let Some(&ch) = chars.get(i) {
                        if ch.is_whitespace() || ch == ';' || ch == '#' || ch == '\'' || ch == '"' {
                            break;
                        }
                        s.push(ch);
                        i += 1;
                    }
                    current.tokens.push(Tok::Word(s));
                }
            }
        }
        flush(&mut current, chars.len(), &mut out, start_text);
    }
    Ok(out)
}

/// A script the PowerShell parser rejects, as PowerShell reports it.
#[derive(Debug, thiserror::Error)]
#[error(
    "At line:{line} char:1\r\nThe string is missing the terminator: {quote}.\r\n    + CategoryInfo          : ParserError: (:) [], ParentContainsErrorRecordException\r\n    + FullyQualifiedErrorId : TerminatorExpectedAtEndOfString"
)]
struct ParseError {
    line: usize,
    quote: &'static str,
}

fn unterminated(line: usize, quote: &'static str) -> ParseError {
    ParseError { line, quote }
}

/// Variables a raw script can read.
struct Scope {
    computer_name: String,
    args: Option<Value>,
    vars: BTreeMap<String, String>,
}

const PS_VERSION: (u32, u32, u32, u32) = (5, 1, 17763, 1852);

impl Scope {
    /// Value of a variable reference such as `$env:COMPUTERNAME` or `$SalveArgs.kb`;
    /// `None` when the reference is not one the subset knows.
    fn variable(&self, reference: &str) -> Option<Vec<String>> {
        let name = reference.strip_prefix('$')?;
        let lower = name.to_ascii_lowercase();
        if lower == "env:computername" {
            return Some(vec![self.computer_name.clone()]);
        }
        if lower == "psversiontable.psversion" {
            let (a, b, c, d) = PS_VERSION;
            return Some(vec![
                String::new(),
                "Major  Minor  Build  Revision".to_string(),
                "-----  -----  -----  --------".to_string(),
                format!("{a:<6} {b:<6} {c:<6} {d}"),
                String::new(),
                String::new(),
            ]);
        }
        if let Some(part) = lower.strip_prefix("psversiontable.psversion.") {
            let (a, b, c, d) = PS_VERSION;
            let v = match part {
                "major" => a,
                "minor" => b,
                "build" => c,
                "revision" => d,
                _ => return Some(Vec::new()),
            };
            return Some(vec![v.to_string()]);
        }
        if lower == "true" || lower == "false" || lower == "null" {
            return Some(match lower.as_str() {
                "true" => vec!["True".to_string()],
                "false" => vec!["False".to_string()],
                _ => Vec::new(),
            });
        }
        if lower == "salveargs" || lower.starts_with("salveargs.") {
            let mut value = self.args.as_ref();
            for field in name.split('.').skip(1) {
                value = value.and_then(|v| v.get(field));
            }
            return Some(value.map(render_value).unwrap_or_default());
        }
        let key = lower.split('.').next().unwrap_or_default();
        if let Some(v) = self.vars.get(key) {
            return Some(if lower.contains('.') {
                Vec::new()
            } else {
                vec![v.clone()]
            });
        }
        // An unset variable is $null in PowerShell: it prints nothing.
        if name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Some(Vec::new());
        }
        None
    }

    /// Expand a double-quoted string as PowerShell does: `$var` and `$env:NAME` expand, member
    /// access does not (`"$SalveArgs.kb"` is the object followed by `.kb`), and `$( ... )`
    /// subexpressions expand what they hold. `None` when a subexpression is beyond the subset.
    fn expand(&self, s: &str) -> Option<String> {
        let mut out = String::new();
        let chars: Vec<char> = s.chars().collect();
        let mut i = 0;
        let is_word = |c: &char| c.is_alphanumeric() || *c == '_';
        while i < chars.len() {
            if chars[i] == '$' && chars.get(i + 1) == Some(&'(') {
                let close = chars[i + 2..].iter().position(|&c| c == ')')? + i + 2;
                let inner: String = chars[i + 2..close].iter().collect();
                let inner = inner.trim();
                if !inner.starts_with('$') {
                    return None;
                }
                out.push_str(&self.variable(inner)?.join(" "));
                i = close + 1;
            } else if chars[i] == '$' && chars.get(i + 1).is_some_and(is_word) {
                let word_end = |mut j: usize| {
                    while j < chars.len() && is_word(&chars[j]) {
                        j += 1;
                    }
                    j
                };
                let mut j = word_end(i + 1);
                // A scope-qualified name: `$env:NAME`.
                if chars.get(j) == Some(&':') && chars.get(j + 1).is_some_and(is_word) {
                    j = word_end(j + 1);
                }
                let name: String = chars[i..j].iter().collect();
                out.push_str(&self.variable(&name).unwrap_or_default().join(" "));
                i = j;
            } else {
                out.push(chars[i]);
                i += 1;
            }
        }
        Some(out)
    }

    /// The text value of an argument token; `None` for an unknown `$` reference.
    fn value(&self, tok: &Tok) -> Option<Vec<String>> {
        match tok {
            Tok::Verbatim(s) => Some(vec![s.clone()]),
            Tok::Expandable(s) => Some(vec![self.expand(s)?]),
            Tok::Word(w) if w.starts_with('$') => self.variable(w),
            Tok::Word(w) => Some(vec![w.clone()]),
        }
    }
}

fn render_value(v: &Value) -> Vec<String> {
    match v {
        Value::Null => Vec::new(),
        Value::Bool(true) => vec!["True".to_string()],
        Value::Bool(false) => vec!["False".to_string()],
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(render_value).collect(),
        // A PSCustomObject in a string: `@{name=value; other=value}`.
        Value::Object(map) => vec![format!(
            "@{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{k}={}", render_value(v).join(" ")))
                .collect::<Vec<_>>()
                .join("; ")
        )],
        other => vec![other.to_string()],
    }
}

/// An error record's text lines for a failed statement.
fn error_record(st: &Statement, message: &str, category: &str, fqid: &str) -> Vec<String> {
    let underline = "~".repeat(st.tokens.first().map_or(1, |t| match t {
        Tok::Word(w) => w.chars().count().max(1),
        _ => 1,
    }));
    vec![
        format!("{} : {message}", st.text),
        format!("At line:{} char:{}", st.line, st.column),
        format!("+ {}", st.text),
        format!("+ {underline}"),
        format!("    + CategoryInfo          : {category}"),
        format!("    + FullyQualifiedErrorId : {fqid}"),
        " ".to_string(),
    ]
}

fn not_recognized(st: &Statement, term: &str) -> Vec<String> {
    error_record(
        st,
        &format!(
            "The term '{term}' is not recognized as the name of a cmdlet, function, script file, or operable program. Check the spelling of the name, or if a path was included, verify that the path is correct and try again."
        ),
        &format!("ObjectNotFound: ({term}:String) [], CommandNotFoundException"),
        "CommandNotFoundException",
    )
}

enum Step {
    Continue,
    Exit(i32),
    Failed(Vec<String>),
}

/// One `powershell.exe` process: its variables, error preference, console and stdin.
pub struct Session<'a> {
    core: &'a Arc<FleetCore>,
    idx: usize,
    out: &'a Out,
    kill: &'a CancellationToken,
    scope: Scope,
    stop: bool,
    failed: bool,
    /// Redirected stdin, until `$input` has been read (an enumerator reads it once).
    stdin: Option<mpsc::UnboundedReceiver<StdinChunk>>,
    /// `try` blocks around the statement running now.
    in_try: usize,
}

type Boxed<'f> = Pin<Box<dyn Future<Output = Step> + Send + 'f>>;

impl<'a> Session<'a> {
    pub fn new(
        core: &'a Arc<FleetCore>,
        idx: usize,
        out: &'a Out,
        kill: &'a CancellationToken,
        stdin: Option<mpsc::UnboundedReceiver<StdinChunk>>,
    ) -> Self {
        Session {
            core,
            idx,
            out,
            kill,
            scope: Scope {
                computer_name: core.name(idx).to_string(),
                args: None,
                vars: BTreeMap::new(),
            },
            stop: false,
            failed: false,
            stdin,
            in_try: 0,
        }
    }

    /// Run script text as `powershell.exe -EncodedCommand` or `-Command <text>` does; returns
    /// the process's exit code.
    pub async fn run_program(&mut self, text: &str) -> i32 {
        let step = self.run_text(text).await;
        self.exit_code(step)
    }

    /// Run statements already delimited by the console host (`-Command -`), one after another
    /// in this session; returns the process's exit code.
    pub async fn run_typed(&mut self, chunks: &[String]) -> i32 {
        for chunk in chunks {
            // Each statement typed at the prompt runs on its own: an error ends that one.
            match self.run_block(chunk).await {
                Step::Continue => {}
                Step::Failed(record) => {
                    self.out.error(&record);
                    self.failed = true;
                }
                Step::Exit(code) => return code,
            }
        }
        i32::from(self.failed)
    }

    /// Take the `$SalveArgs` and error preference of a rendered script's prelude.
    pub fn adopt_prelude(&mut self, text: &str, script: &Script) {
        if script.args.is_some() {
            self.scope.args.clone_from(&script.args);
        }
        if text.contains("$ErrorActionPreference = 'Stop'") {
            self.stop = true;
        }
    }

    fn exit_code(&self, step: Step) -> i32 {
        match step {
            Step::Exit(code) => code,
            Step::Failed(record) => {
                self.out.error(&record);
                1
            }
            Step::Continue => i32::from(self.failed),
        }
    }

    /// A whole script: a shipped one runs its simulation, anything else runs statement by
    /// statement.
    fn run_text<'s>(&'s mut self, text: &'s str) -> Boxed<'s> {
        Box::pin(async move {
            // PowerShell's tokenizer reads CRLF (as `$input | Out-String` joins lines) as a
            // newline; the envelope is read the same way.
            let text = &text.replace("\r\n", "\n");
            let script = match parse_rendered(text) {
                Ok(s) => s,
                Err(e) => {
                    return Step::Failed(vec![format!(
                        "The script prelude could not be read: {e}"
                    )]);
                }
            };
            if let Some(id) = script.id.clone() {
                self.core
                    .record(self.idx, LabEvent::ScriptStarted { id: id.clone() });
                let code = match ScriptId::parse(&id) {
                    Some(id) => {
                        scripts::run(self.core, self.idx, id, script, self.out, self.kill).await
                    }
                    None => {
                        self.out.error(&[format!(
                            "the lab has no simulation of the shipped script `{id}`"
                        )]);
                        1
                    }
                };
                return Step::Exit(code);
            }
            if script.args.is_some() || text.starts_with(PREFERENCES_LINE) {
                self.core.record(
                    self.idx,
                    LabEvent::ScriptStarted {
                        id: "raw".to_string(),
                    },
                );
            }
            self.adopt_prelude(text, &script);
            self.run_block(&script.body).await
        })
    }

    /// Statements of a block, in order, as PowerShell runs them.
    fn run_block<'s>(&'s mut self, text: &'s str) -> Boxed<'s> {
        Box::pin(async move {
            let Some(list) = ps_grammar::statements(text) else {
                return Step::Failed(parse_error_record(text));
            };
            for statement in list {
                if self.kill.is_cancelled() {
                    return Step::Exit(EXIT_TERMINATED);
                }
                let step = match statement {
                    ps_grammar::Statement::Plain { text, line } => {
                        self.run_plain(&text, line).await
                    }
                    ps_grammar::Statement::InvokeBlock { body } => {
                        self.run_text(body.trim_start_matches('\n')).await
                    }
                    ps_grammar::Statement::Try {
                        body,
                        handler,
                        cleanup,
                    } => {
                        self.run_try(&body, handler.as_deref(), cleanup.as_deref())
                            .await
                    }
                    ps_grammar::Statement::If { arms } => self.run_if(&arms).await,
                };
                match step {
                    Step::Continue => {}
                    Step::Failed(record) if self.in_try == 0 && !self.stop => {
                        self.out.error(&record);
                        self.failed = true;
                    }
                    other => return other,
                }
            }
            Step::Continue
        })
    }

    async fn run_try(&mut self, body: &str, handler: Option<&str>, cleanup: Option<&str>) -> Step {
        self.in_try += 1;
        let step = self.run_block(body).await;
        self.in_try -= 1;
        let step = match (step, handler) {
            (Step::Failed(_), Some(handler)) => self.run_block(handler).await,
            (other, _) => other,
        };
        match cleanup {
            Some(cleanup) => match self.run_block(cleanup).await {
                Step::Continue => step,
                other => other,
            },
            None => step,
        }
    }

    async fn run_if(&mut self, arms: &[(Option<String>, String)]) -> Step {
        for (condition, body) in arms {
            let taken = match condition {
                None => true,
                Some(c) => match self.condition(c) {
                    Some(taken) => taken,
                    None => {
                        return Step::Failed(vec![format!(
                            "the lab's PowerShell subset cannot evaluate the condition ({c})"
                        )]);
                    }
                },
            };
            if taken {
                return self.run_block(body).await;
            }
        }
        Step::Continue
    }

    /// The truth of a condition the subset knows: a value (`$true`, `$x`, `1`, `'text'`) or
    /// two values compared with `-eq`/`-ne`, optionally negated with `-not`/`!`.
    fn condition(&self, text: &str) -> Option<bool> {
        let text = text.trim();
        if let Some(rest) = text
            .strip_prefix("-not ")
            .or_else(|| text.strip_prefix('!'))
        {
            return self.condition(rest).map(|b| !b);
        }
        let st = statements(text).ok()?.into_iter().next()?;
        let value = |t: &Tok| self.scope.value(t).map(|v| v.join(" "));
        match st.tokens.as_slice() {
            [single] => {
                let v = value(single)?;
                Some(!(v.is_empty() || v == "False" || v == "0"))
            }
            [a, Tok::Word(op), b] => {
                let (a, b) = (value(a)?, value(b)?);
                match op.to_ascii_lowercase().as_str() {
                    "-eq" => Some(a.eq_ignore_ascii_case(&b)),
                    "-ne" => Some(!a.eq_ignore_ascii_case(&b)),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// A statement that is not a block: the console-encoding and script-block forms a
    /// bootstrap uses, then the subset's simple statements.
    async fn run_plain(&mut self, text: &str, line: usize) -> Step {
        let compact: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        if compact.starts_with("[console]::") {
            return self.set_console_encoding(&compact);
        }
        if let Some((var, rest)) = compact.split_once('=')
            && var.starts_with('$')
            && rest == "$input|out-string"
        {
            let text = self.read_input().await;
            self.scope.vars.insert(var[1..].to_string(), text);
            return Step::Continue;
        }
        if let Some(arg) = compact
            .strip_prefix("&([scriptblock]::create(")
            .and_then(|r| r.strip_suffix("))"))
        {
            let source = if arg == "($input|out-string)" {
                self.read_input().await
            } else if let Some(var) = arg.strip_prefix('$') {
                self.scope.vars.get(var).cloned().unwrap_or_default()
            } else {
                return Step::Failed(vec![format!(
                    "the lab's PowerShell subset cannot evaluate ({text})"
                )]);
            };
            return match ps_grammar::completeness(&source) {
                ps_grammar::Completeness::Complete => self.run_text(&source).await,
                _ => Step::Failed(create_failed(&source)),
            };
        }
        let statements = match statements(text) {
            Ok(s) => s,
            Err(parse_error) => return Step::Failed(vec![parse_error.to_string()]),
        };
        for mut st in statements {
            st.line += line - 1;
            match execute(
                self.core,
                &st,
                &mut self.scope,
                &mut self.stop,
                self.out,
                self.kill,
            )
            .await
            {
                Step::Continue => {}
                other => return other,
            }
        }
        Step::Continue
    }

    /// `[Console]::InputEncoding = [Console]::OutputEncoding = <encoding>` (either or both).
    fn set_console_encoding(&mut self, compact: &str) -> Step {
        let parts: Vec<&str> = compact.split('=').collect();
        let Some((value, targets)) = parts.split_last() else {
            return Step::Continue;
        };
        if !(value.contains("utf8encoding") || value.ends_with("::utf8")) {
            return Step::Failed(vec![format!(
                "the lab models UTF-8 and the OEM code page only, not ({value})"
            )]);
        }
        for target in targets {
            match *target {
                "[console]::outputencoding" => self.out.console().set_output_utf8(),
                "[console]::inputencoding" => self.out.console().set_input_utf8(),
                other => {
                    return Step::Failed(vec![format!(
                        "the lab's PowerShell subset cannot assign ({other})"
                    )]);
                }
            }
        }
        Step::Continue
    }

    /// `$input | Out-String`: every stdin line, each ended by CRLF, decoded in the console's
    /// input encoding. Empty once read.
    async fn read_input(&mut self) -> String {
        let Some(mut rx) = self.stdin.take() else {
            return String::new();
        };
        let data = read_stdin(&mut rx, self.kill).await.unwrap_or_default();
        let text = self.out.console().decode(&data);
        text.lines().map(|l| format!("{l}\r\n")).collect()
    }
}

/// The first line of the prelude every rendered script starts with.
const PREFERENCES_LINE: &str = "$ErrorActionPreference";

fn parse_error_record(text: &str) -> Vec<String> {
    vec![
        format!("At line:{} char:1", text.lines().count().max(1)),
        "Missing closing '}' in statement block or type definition.".to_string(),
        "    + CategoryInfo          : ParserError: (:) [], ParentContainsErrorRecordException"
            .to_string(),
        "    + FullyQualifiedErrorId : MissingEndCurlyBrace".to_string(),
    ]
}

/// `[ScriptBlock]::Create` of text that does not parse: a method-call exception.
fn create_failed(text: &str) -> Vec<String> {
    let mut record = vec![format!(
        "Exception calling \"Create\" with \"1\" argument(s): \"At line:{} char:1 Missing closing '}}' in statement block or type definition.\"",
        text.lines().count().max(1)
    )];
    record.push(
        "    + CategoryInfo          : NotSpecified: (:) [], MethodInvocationException".to_string(),
    );
    record.push("    + FullyQualifiedErrorId : ParseException".to_string());
    record
}

async fn execute(
    core: &FleetCore,
    st: &Statement,
    scope: &mut Scope,
    stop: &mut bool,
    out: &Out,
    kill: &CancellationToken,
) -> Step {
    let Some(first) = st.tokens.first() else {
        return Step::Continue;
    };
    let rest = &st.tokens[1..];
    let name = match first {
        Tok::Word(w) => w.clone(),
        other => {
            // A bare string is an expression: its value goes to the output.
            scope
                .value(other)
                .unwrap_or_default()
                .iter()
                .for_each(|l| out.line(l));
            return Step::Continue;
        }
    };
    if let Some(var) = name.strip_prefix('$') {
        if rest.first() == Some(&Tok::Word("=".to_string())) {
            let value = rest
                .get(1)
                .and_then(|t| scope.value(t))
                .unwrap_or_default()
                .join(" ");
            if var.eq_ignore_ascii_case("ErrorActionPreference") {
                *stop = value.eq_ignore_ascii_case("stop");
            }
            scope.vars.insert(var.to_ascii_lowercase(), value);
            return Step::Continue;
        }
        return match (rest.is_empty(), scope.variable(&name)) {
            (true, Some(lines)) => {
                lines.iter().for_each(|l| out.line(l));
                Step::Continue
            }
            _ => Step::Failed(not_recognized(st, &name)),
        };
    }
    if name.parse::<f64>().is_ok() && rest.is_empty() {
        out.line(&name);
        return Step::Continue;
    }
    let mut values = Vec::new();
    for t in rest {
        match scope.value(t) {
            Some(v) => values.push(v),
            None => return Step::Failed(not_recognized(st, &name)),
        }
    }
    match name.to_ascii_lowercase().as_str() {
        "write-output" | "echo" | "write" => {
            values
                .iter()
                .flatten()
                .filter(|v| !v.eq_ignore_ascii_case("-inputobject"))
                .for_each(|l| out.line(l));
            Step::Continue
        }
        "write-host" => {
            let mut words = Vec::new();
            let mut skip = false;
            for (t, v) in rest.iter().zip(&values) {
                match t {
                    _ if skip => skip = false,
                    Tok::Word(w)
                        if w.eq_ignore_ascii_case("-foregroundcolor")
                            || w.eq_ignore_ascii_case("-backgroundcolor") =>
                    {
                        skip = true
                    }
                    Tok::Word(w)
                        if w.eq_ignore_ascii_case("-nonewline")
                            || w.eq_ignore_ascii_case("-object") => {}
                    _ => words.extend(v.iter().cloned()),
                }
            }
            out.line(&words.join(" "));
            Step::Continue
        }
        "write-error" => {
            let message: Vec<String> = rest
                .iter()
                .zip(&values)
                .filter(|(t, _)| !matches!(t, Tok::Word(w) if w.eq_ignore_ascii_case("-message")))
                .flat_map(|(_, v)| v.iter().cloned())
                .collect();
            Step::Failed(error_record(
                st,
                &message.join(" "),
                "NotSpecified: (:) [Write-Error], WriteErrorException",
                "Microsoft.PowerShell.Commands.WriteErrorException",
            ))
        }
        "exit" => match values.first().and_then(|v| v.first()) {
            None => Step::Exit(0),
            Some(code) => match code.parse::<i64>() {
                // Windows keeps the low 32 bits of the exit code.
                Ok(n) => Step::Exit(n as i32),
                Err(_) => Step::Failed(error_record(
                    st,
                    &format!("Cannot convert value \"{code}\" to type \"System.Int32\"."),
                    "InvalidArgument: (:) [], RuntimeException",
                    "InvalidCastFromStringToInteger",
                )),
            },
        },
        "start-sleep" | "sleep" => {
            let flat: Vec<String> = values.into_iter().flatten().collect();
            let (unit_ms, amount) = match flat.as_slice() {
                [flag, n] if is_flag(flag, &["-seconds", "-s"]) => (1000.0, n),
                [flag, n] if is_flag(flag, &["-milliseconds", "-m"]) => (1.0, n),
                [n] => (1000.0, n),
                _ => return Step::Failed(bad_sleep(st, &flat.join(" "))),
            };
            let Ok(amount) = amount.parse::<f64>() else {
                return Step::Failed(bad_sleep(st, amount));
            };
            if !(0.0..=86_400_000.0).contains(&amount) {
                return Step::Failed(bad_sleep(st, &amount.to_string()));
            }
            let sim = Duration::from_secs_f64(amount * unit_ms / 1000.0);
            if sim_sleep(core, sim, kill).await {
                Step::Continue
            } else {
                Step::Exit(EXIT_TERMINATED)
            }
        }
        "hostname" | "hostname.exe" => {
            out.line(&scope.computer_name);
            Step::Continue
        }
        _ => Step::Failed(not_recognized(st, &name)),
    }
}

fn is_flag(text: &str, names: &[&str]) -> bool {
    names.iter().any(|n| text.eq_ignore_ascii_case(n))
}

fn bad_sleep(st: &Statement, value: &str) -> Vec<String> {
    error_record(
        st,
        &format!(
            "Cannot bind parameter 'Seconds'. Cannot convert value \"{value}\" to type \"System.Int32\"."
        ),
        "InvalidArgument: (:) [Start-Sleep], ParameterBindingException",
        "CannotConvertArgumentNoMessage,Microsoft.PowerShell.Commands.StartSleepCommand",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_and_quotes() {
        let st = statements("Write-Output 'a;b' ; echo \"x`ty\" # c\n\nexit 3").unwrap();
        assert_eq!(st.len(), 3);
        assert_eq!(st[0].tokens[1], Tok::Verbatim("a;b".into()));
        assert_eq!(st[1].tokens[1], Tok::Expandable("x`ty".replace("`t", "\t")));
        assert_eq!((st[1].line, st[1].column), (1, 22));
        assert_eq!((st[2].line, st[2].column), (3, 1));
        assert!(statements("echo 'open").is_err());
    }

    #[test]
    fn expands_variables_in_double_quotes() {
        let args = serde_json::json!({"kb": "KB5000871", "n": 2, "nested": {"x": true}});
        let scope = Scope {
            computer_name: "EX01".into(),
            args: Some(args),
            vars: BTreeMap::new(),
        };
        assert_eq!(
            scope
                .expand("on $env:COMPUTERNAME: $($SalveArgs.kb)/$( $SalveArgs.n )")
                .as_deref(),
            Some("on EX01: KB5000871/2")
        );
        assert_eq!(
            scope
                .expand("$($SalveArgs.nested.x) $($SalveArgs.missing).")
                .as_deref(),
            Some("True .")
        );
        // As in PowerShell, member access needs $( ) inside a string.
        assert_eq!(
            scope.expand("$SalveArgs.kb").as_deref(),
            Some("@{kb=KB5000871; n=2; nested=@{x=True}}.kb")
        );
        assert_eq!(
            scope.expand("$(Get-Date)"),
            None,
            "beyond the subset: an error, not silence"
        );
    }
}
