//! The PowerShell subset the lab understands in raw (user-written) scripts.
//!
//! Enough for the raw-task features of a playbook and for protocol tests: `Write-Output` (and
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

use crate::command::{EXIT_TERMINATED, Out, sim_sleep};
use crate::fleet_core::FleetCore;

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
struct Scope<'a> {
    computer_name: String,
    args: Option<&'a Value>,
    vars: BTreeMap<String, String>,
}

const PS_VERSION: (u32, u32, u32, u32) = (5, 1, 17763, 1852);

impl Scope<'_> {
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
            let mut value = self.args;
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

/// Run a raw script body; returns the exit code.
pub async fn run(
    core: &FleetCore,
    idx: usize,
    body: &str,
    args: Option<&Value>,
    stop_on_error: bool,
    out: &Out,
    kill: &CancellationToken,
) -> i32 {
    let statements = match statements(body) {
        Ok(s) => s,
        Err(parse_error) => {
            out.error(&[parse_error.to_string()]);
            return 1;
        }
    };
    let mut scope = Scope {
        computer_name: core.name(idx).to_string(),
        args,
        vars: BTreeMap::new(),
    };
    let mut failed = false;
    let mut stop = stop_on_error;
    for st in &statements {
        if kill.is_cancelled() {
            return EXIT_TERMINATED;
        }
        match execute(core, st, &mut scope, &mut stop, out, kill).await {
            Step::Continue => {}
            Step::Exit(code) => return code,
            Step::Failed(record) => {
                out.error(&record);
                failed = true;
                if stop {
                    return 1;
                }
            }
        }
    }
    i32::from(failed)
}

async fn execute(
    core: &FleetCore,
    st: &Statement,
    scope: &mut Scope<'_>,
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
            args: Some(&args),
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
