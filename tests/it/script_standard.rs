//! The standard for shipped PowerShell (`scripts/README.md`), enforced on every script under
//! `scripts/` with a real PowerShell grammar (tree-sitter-powershell), so comments and strings
//! never trip a rule and a rule is never dodged by spacing:
//!
//! 1. no `return , $array`: the unary comma wraps the array in another one, and a caller that
//!    writes `@(Get-Thing)` (the usual way to always get an array) then gets an array inside an
//!    array — `[[]]` in JSON, and a `foreach` that runs once over the whole list;
//! 2. no `powershell.exe -Command -`: Windows PowerShell reads such input as typed at a prompt and
//!    drops a final multi-line statement without a word;
//! 3. no call of another script (`& $path`, `& (Join-Path ...)`) under the prelude's global
//!    `$ErrorActionPreference = 'Stop'`: the called script (StartDagServerMaintenance.ps1,
//!    ServiceControl.ps1 — Microsoft's own) inherits it and stops half way at its first
//!    non-terminating error. The call must sit in a function or script block that sets
//!    `$ErrorActionPreference` itself first.

use std::path::PathBuf;

use tree_sitter::{Node, Parser};

fn shipped_scripts() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ps1"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// Every node of the script, depth first.
fn nodes<'t>(root: Node<'t>) -> Vec<Node<'t>> {
    let mut all = Vec::new();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        all.push(node);
        let mut cursor = node.walk();
        stack.extend(node.children(&mut cursor));
    }
    all
}

fn compact(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

/// Violations of the standard in one script, as `line N: rule: text`.
fn violations(source: &str) -> Vec<String> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_powershell::LANGUAGE.into())
        .unwrap();
    let tree = parser.parse(source, None).unwrap();
    let text = |n: Node<'_>| &source[n.byte_range()];
    let mut found = Vec::new();
    for node in nodes(tree.root_node()) {
        let line = node.start_position().row + 1;
        match node.kind() {
            "flow_control_statement" => {
                let statement = compact(text(node));
                if let Some(rest) = statement.strip_prefix("return")
                    && rest.trim_start().starts_with(',')
                {
                    found.push(format!(
                        "line {line}: `return ,` nests the array when the caller uses @(): {statement}"
                    ));
                }
            }
            "command" => {
                let command = compact(text(node));
                if command.contains("-command -") {
                    found.push(format!(
                        "line {line}: `-Command -` reads the script as typed input: {command}"
                    ));
                }
                if calls_another_script(node, source) && !sets_preference_first(node, source) {
                    found.push(format!(
                        "line {line}: a script called under the global $ErrorActionPreference \
                         = 'Stop'; set $ErrorActionPreference in the enclosing function or \
                         & {{ }} block first: {command}"
                    ));
                }
            }
            _ => {}
        }
    }
    found
}

/// `& <expression>` where the expression is neither a script block literal nor a quoted path
/// to an `.exe` (a native program, which does not see PowerShell's preferences): another
/// script.
fn calls_another_script(command: Node<'_>, source: &str) -> bool {
    let text = source[command.byte_range()].trim_start();
    let Some(target) = text.strip_prefix('&').map(str::trim_start) else {
        return false;
    };
    let first = target.split_whitespace().next().unwrap_or_default();
    let native = first
        .trim_matches(|c| c == '"' || c == '\'')
        .to_ascii_lowercase()
        .ends_with(".exe");
    !target.starts_with('{') && !native
}

/// Whether a function or script block around `call` assigns `$ErrorActionPreference` before it.
fn sets_preference_first(call: Node<'_>, source: &str) -> bool {
    let mut scope = call.parent();
    while let Some(node) = scope {
        if matches!(node.kind(), "script_block" | "function_statement") {
            let before = nodes(node).into_iter().any(|n| {
                n.kind() == "assignment_expression"
                    && n.end_byte() <= call.start_byte()
                    && compact(&source[n.byte_range()]).starts_with("$erroractionpreference")
            });
            if before {
                return true;
            }
        }
        scope = node.parent();
    }
    false
}

#[test]
fn the_rules_find_what_they_forbid() {
    let bad = "function Get-List { return , @(1, 2) }\n\
               powershell.exe -NoProfile -Command - < x.ps1\n\
               & (Join-Path $dir 'StartDagServerMaintenance.ps1') -ServerName x\n\
               & \"$env:SystemRoot\\System32\\shutdown.exe\" /r\n";
    let found = violations(bad);
    assert_eq!(found.len(), 3, "{found:#?}");
    let good = "function Get-List { return @(1, 2) }\n\
                # return , is fine in a comment; so is 'return , x' in a string\n\
                function Invoke-Theirs { $ErrorActionPreference = 'Continue'; & $script -x }\n\
                & { $ErrorActionPreference = 'Continue'\n & (Join-Path $d 'a.ps1') }\n\
                & { Write-Output 'a block is not another script' }\n";
    assert_eq!(violations(good), Vec::<String>::new());
}

#[test]
fn every_shipped_script_meets_the_standard() {
    let mut report = Vec::new();
    for (name, source) in shipped_scripts() {
        for v in violations(&source) {
            report.push(format!("scripts/{name} {v}"));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}
