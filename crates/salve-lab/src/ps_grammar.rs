//! PowerShell's grammar, for what the lab's `powershell.exe` decides from syntax alone.
//!
//! Windows PowerShell parses its input before running any of it. Two of its decisions matter to
//! how a script reaches a host, and the lab takes both from a real PowerShell grammar
//! (tree-sitter-powershell) rather than from guesses about salve's scripts:
//!
//! * whether text read so far is a complete statement, still open (a `{`, `(` or quote not yet
//!   closed: PowerShell's "incomplete input", which makes the console host read more lines), or
//!   wrong (a parse error that more input cannot fix) — [`completeness`];
//! * where the top-level statements of a script begin and end, and which are `try` or `if`
//!   blocks, script block invocations (`& { ... }`) or plain pipelines — [`statements`].
//!
//! Parsing is most of the lab's work at fleet scale (a shipped script is 2–27 KB, and a
//! thousand hosts send a dozen each), yet salve sends the same few script bodies over and over,
//! in its envelope (`& {`, a prelude whose only variable part is a base64 literal, the body,
//! `}`). So the verdict on each body is kept ([`enveloped`]), and an enveloped script whose body
//! is known to be whole statements is answered without parsing it again: the prelude is whole
//! statements whatever its arguments ([`salve_contract::wire::prelude_end`]), so the script
//! parses exactly as its body does. Anything else is parsed in full. A test holds the two paths
//! equal on every shipped script.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use salve_contract::wire::prelude_end;
use tree_sitter::{Node, Parser, Tree};

/// What the parser makes of input read so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    /// Parses as whole statements.
    Complete,
    /// Ends inside a statement (an open block, parenthesis or string): more input could
    /// complete it.
    Incomplete,
    /// A parse error before the end of the input.
    Invalid,
}

fn parse(text: &str) -> Option<Tree> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_powershell::LANGUAGE.into())
        .ok()?;
    parser.parse(text, None)
}

/// The opening and closing of salve's envelope around a rendered script (see the module docs).
const ENVELOPE_OPEN: &str = "& {\n";
const ENVELOPE_CLOSE: &str = "\n}\n";

/// Body verdicts kept at most; past that the table starts again (bodies are few: the shipped
/// scripts, and the playbooks' own).
const KEPT_BODIES: usize = 256;

static BODIES: LazyLock<Mutex<HashMap<String, Completeness>>> = LazyLock::new(Mutex::default);

/// When `text` (line ends already LF) is a script in salve's envelope whose body is whole
/// statements: the text inside its braces, as [`statements`] gives an invoked block's body.
fn enveloped(text: &str) -> Option<&str> {
    let rendered = text
        .strip_prefix(ENVELOPE_OPEN)?
        .strip_suffix(ENVELOPE_CLOSE)?;
    let body = &rendered[prelude_end(rendered)?..];
    // A backtick at the very end would join the closing brace's line to the body's last one.
    if body.trim_end().ends_with('`') {
        return None;
    }
    let known = BODIES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(body)
        .copied();
    let verdict = known.unwrap_or_else(|| {
        let verdict = parsed_completeness(body);
        let mut bodies = BODIES.lock().unwrap_or_else(|e| e.into_inner());
        if bodies.len() >= KEPT_BODIES {
            bodies.clear();
        }
        bodies.insert(body.to_string(), verdict);
        verdict
    });
    (verdict == Completeness::Complete)
        .then(|| &text[ENVELOPE_OPEN.len() - 1..text.len() - ENVELOPE_CLOSE.len() + 1])
}

/// Whether `text` is complete PowerShell, still open at its end, or wrong.
pub fn completeness(text: &str) -> Completeness {
    if enveloped(&text.replace("\r\n", "\n")).is_some() {
        return Completeness::Complete;
    }
    parsed_completeness(text)
}

/// [`completeness`] by parsing the whole text.
fn parsed_completeness(text: &str) -> Completeness {
    let Some(tree) = parse(text) else {
        return Completeness::Invalid;
    };
    let root = tree.root_node();
    if !root.has_error() {
        // `try { }` with no `catch` or `finally` yet: PowerShell waits for them.
        return match last_statement(root) {
            Some(s) if s.kind() == "try_statement" && !has_handler(s) => Completeness::Incomplete,
            _ => Completeness::Complete,
        };
    }
    let end = text.trim_end().len();
    match first_error(root) {
        // An error the parser could only place at the end of the input (a missing `}`, an
        // unterminated string) is input that has not finished yet.
        Some(e) if e.is_missing() || e.end_byte() >= end => Completeness::Incomplete,
        _ => Completeness::Invalid,
    }
}

fn last_statement(root: Node<'_>) -> Option<Node<'_>> {
    let list = first_child_of_kind(root, &["statement_list"])?;
    let mut cursor = list.walk();
    list.named_children(&mut cursor)
        .filter(|c| c.kind() != "comment")
        .last()
}

fn has_handler(try_statement: Node<'_>) -> bool {
    first_child_of_kind(try_statement, &["catch_clauses", "finally_clause"]).is_some()
}

fn first_error(node: Node<'_>) -> Option<Node<'_>> {
    if node.is_error() || node.is_missing() {
        return Some(node);
    }
    let mut cursor = node.walk();
    node.children(&mut cursor)
        .filter(|c| c.has_error() || c.is_missing())
        .find_map(first_error)
}

/// One top-level statement of a script, as the parser delimits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `try { body } catch { handler } finally { cleanup }` (handler and cleanup may be empty).
    Try {
        body: String,
        handler: Option<String>,
        cleanup: Option<String>,
    },
    /// `if (condition) { then } elseif ... else { otherwise }`, as condition/body pairs; the
    /// `else` body has the condition `None`.
    If { arms: Vec<(Option<String>, String)> },
    /// `& { body }`: a script block invoked in place.
    InvokeBlock { body: String },
    /// Anything else, with its text and 1-based line.
    Plain { text: String, line: usize },
}

/// The top-level statements of `text`, or `None` when it does not parse as whole statements.
pub fn statements(text: &str) -> Option<Vec<Statement>> {
    if let Some(body) = enveloped(text) {
        return Some(vec![Statement::InvokeBlock {
            body: body.to_string(),
        }]);
    }
    parsed_statements(text)
}

/// [`statements`] by parsing the whole text.
fn parsed_statements(text: &str) -> Option<Vec<Statement>> {
    let tree = parse(text)?;
    let root = tree.root_node();
    if root.has_error() {
        return None;
    }
    let mut out = Vec::new();
    collect(root, text, &mut out);
    Some(out)
}

fn collect(node: Node<'_>, text: &str, out: &mut Vec<Statement>) {
    let mut cursor = node.walk();
    for child in node.named_children(&mut cursor) {
        match child.kind() {
            "statement_list" | "script_block_body" | "named_block_list" => {
                collect(child, text, out)
            }
            "comment" | "empty_statement" => {}
            "try_statement" => out.push(try_statement(child, text)),
            "if_statement" => out.push(if_statement(child, text)),
            _ => out.push(
                invoked_block(child, text).unwrap_or_else(|| Statement::Plain {
                    text: source(child, text).to_string(),
                    line: child.start_position().row + 1,
                }),
            ),
        }
    }
}

fn source<'t>(node: Node<'_>, text: &'t str) -> &'t str {
    &text[node.byte_range()]
}

/// The statements inside a `{ ... }` block node, as text.
fn block_body(node: Node<'_>, text: &str) -> String {
    let inner = source(node, text).trim();
    let inner = inner.strip_prefix('{').unwrap_or(inner);
    inner.strip_suffix('}').unwrap_or(inner).to_string()
}

fn first_child_of_kind<'a>(node: Node<'a>, kinds: &[&str]) -> Option<Node<'a>> {
    let mut cursor = node.walk();
    node.named_children(&mut cursor)
        .find(|c| kinds.contains(&c.kind()))
}

fn try_statement(node: Node<'_>, text: &str) -> Statement {
    let body = first_child_of_kind(node, &["statement_block"])
        .map(|b| block_body(b, text))
        .unwrap_or_default();
    let handler = first_child_of_kind(node, &["catch_clauses"])
        .and_then(|c| first_child_of_kind(c, &["catch_clause"]))
        .and_then(|c| first_child_of_kind(c, &["statement_block"]))
        .map(|b| block_body(b, text));
    let cleanup = first_child_of_kind(node, &["finally_clause"])
        .and_then(|c| first_child_of_kind(c, &["statement_block"]))
        .map(|b| block_body(b, text));
    Statement::Try {
        body,
        handler,
        cleanup,
    }
}

fn if_statement(node: Node<'_>, text: &str) -> Statement {
    let mut arms = Vec::new();
    let mut condition = None;
    let mut cursor = node.walk();
    for child in node.named_children(&mut cursor) {
        match child.kind() {
            "pipeline" | "pipeline_chain" => condition = Some(source(child, text).to_string()),
            "statement_block" => arms.push((condition.take(), block_body(child, text))),
            "elseif_clauses" => {
                let mut inner = child.walk();
                for clause in child.named_children(&mut inner) {
                    if let Statement::If { arms: more } = if_statement(clause, text) {
                        arms.extend(more);
                    }
                }
            }
            "elseif_clause" => {
                if let Statement::If { arms: more } = if_statement(child, text) {
                    arms.extend(more);
                }
            }
            "else_clause" => {
                if let Some(b) = first_child_of_kind(child, &["statement_block"]) {
                    arms.push((None, block_body(b, text)));
                }
            }
            _ => {}
        }
    }
    Statement::If { arms }
}

/// `& { ... }` as a whole statement: the block's body.
fn invoked_block(node: Node<'_>, text: &str) -> Option<Statement> {
    let statement = source(node, text).trim();
    let rest = statement.strip_prefix('&')?.trim_start();
    if !rest.starts_with('{') || !rest.ends_with('}') {
        return None;
    }
    let block = find_kind(node, "script_block_expression")?;
    (source(block, text).trim() == rest).then(|| Statement::InvokeBlock {
        body: block_body(block, text),
    })
}

fn find_kind<'a>(node: Node<'a>, kind: &str) -> Option<Node<'a>> {
    if node.kind() == kind {
        return Some(node);
    }
    let mut cursor = node.walk();
    node.named_children(&mut cursor)
        .find_map(|c| find_kind(c, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_open_input_from_complete_and_wrong() {
        assert_eq!(completeness("Write-Output 1"), Completeness::Complete);
        assert_eq!(completeness("if ($x) {"), Completeness::Incomplete);
        assert_eq!(completeness("try {\n  'a'\n}"), Completeness::Incomplete);
        assert_eq!(
            completeness("try {\n  'a'\n} catch { 'b' }"),
            Completeness::Complete
        );
        assert_eq!(completeness("Write-Output 'open"), Completeness::Incomplete);
        assert_eq!(completeness("function f {\n"), Completeness::Incomplete);
    }

    /// The kept verdicts answer exactly as parsing would, on every shipped script in salve's
    /// envelope (LF and CRLF, with arguments that differ), and a cut-short envelope is still
    /// found open.
    #[test]
    fn enveloped_scripts_parse_as_their_bodies_do() {
        use salve_contract::wire::Script;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "ps1") {
                continue;
            }
            let body = std::fs::read_to_string(&path).unwrap();
            for args in [
                serde_json::json!({"a": 1}),
                serde_json::json!({"b": "it's $x"}),
            ] {
                let rendered = Script::shipped("x", body.clone(), args).render();
                let text = format!("& {{\n{rendered}\n}}\n");
                assert!(enveloped(&text).is_some(), "{}", path.display());
                assert_eq!(
                    statements(&text),
                    parsed_statements(&text),
                    "{}",
                    path.display()
                );
                let crlf = text.replace('\n', "\r\n");
                assert_eq!(completeness(&crlf), parsed_completeness(&crlf));
                assert_eq!(completeness(&text), Completeness::Complete);
                let cut = &text[..text.len() - 2];
                assert_eq!(completeness(cut), Completeness::Incomplete);
            }
            seen += 1;
        }
        assert!(seen >= 10, "{seen} scripts");
        let open_body = "& {\n$ErrorActionPreference = 'Stop'\n$ProgressPreference = 'SilentlyContinue'\nif ($x) {\n}\n";
        assert!(enveloped(open_body).is_none());
        assert_eq!(statements(open_body), parsed_statements(open_body));
    }

    #[test]
    fn finds_top_level_blocks() {
        let text = "Write-Output 1\ntry {\n  Write-Output 2\n} catch {\n  exit 3\n}\nif ($true) { 'y' } else { 'n' }\n& {\n'inner'\n}\n";
        let st = statements(text).unwrap();
        assert_eq!(
            st[0],
            Statement::Plain {
                text: "Write-Output 1".into(),
                line: 1
            }
        );
        let Statement::Try { body, handler, .. } = &st[1] else {
            panic!("{st:?}")
        };
        assert_eq!(body.trim(), "Write-Output 2");
        assert_eq!(handler.as_deref().map(str::trim), Some("exit 3"));
        let Statement::If { arms } = &st[2] else {
            panic!("{st:?}")
        };
        assert_eq!(arms.len(), 2);
        assert_eq!(arms[0].0.as_deref(), Some("$true"));
        assert_eq!(arms[1].1.trim(), "'n'");
        assert_eq!(
            st[3],
            Statement::InvokeBlock {
                body: "\n'inner'\n".into()
            }
        );
        assert!(statements("try {").is_none());
    }
}
