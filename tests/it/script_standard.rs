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
//! 4. no Exchange cmdlet inside a pipeline that an Exchange cmdlet feeds (`Get-X | ForEach-Object
//!    { Get-Y }`, also through the script's own functions): Exchange's management shell is a
//!    remote session (`Connect-ExchangeServer`, implicit remoting), which runs one pipeline at a
//!    time, so the inner call fails with "Pipelines cannot be executed concurrently" while the
//!    outer one streams. Collect first (`$all = @(Get-X)`), then loop.
//! 5. no `.AdminDisplayVersion.Major` (`.Minor`, `.Build`, `.Revision`): in that remote session
//!    the version arrives deserialized, as the string `Version 15.1 (Build 2507.6)`, whose
//!    `.Minor` is `$null` (CSS-Exchange's scripts parse the string). Compare
//!    `[string] $x.AdminDisplayVersion`, which reads the same in both shells, or read ExSetup.exe.

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
    let exchange = exchange_callers(tree.root_node(), source);
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
            "member_access" => {
                let access = compact(text(node));
                if ["major", "minor", "build", "revision"]
                    .iter()
                    .any(|part| access.ends_with(&format!(".admindisplayversion.{part}")))
                {
                    found.push(format!(
                        "line {line}: AdminDisplayVersion is a string in Exchange's remote \
                         session; compare [string] $x.AdminDisplayVersion: {access}"
                    ));
                }
            }
            "pipeline_chain" => {
                if let Some(inner) = nested_exchange_call(node, source, &exchange) {
                    found.push(format!(
                        "line {line}: `{inner}` runs inside a pipeline an Exchange cmdlet feeds; \
                         Exchange's remote session runs one pipeline at a time: collect the \
                         first into a variable, then loop: {}",
                        compact(text(node))
                    ));
                }
            }
            _ => {}
        }
    }
    found
}

/// Exchange management cmdlets the shipped scripts use (and their neighbours).
const EXCHANGE_CMDLETS: &[&str] = &[
    "get-exchangeserver",
    "get-mailboxserver",
    "set-mailboxserver",
    "get-mailboxdatabase",
    "get-mailboxdatabasecopystatus",
    "suspend-mailboxdatabasecopy",
    "resume-mailboxdatabasecopy",
    "move-activemailboxdatabase",
    "get-databaseavailabilitygroup",
    "get-servercomponentstate",
    "set-servercomponentstate",
    "redirect-message",
    "get-queue",
    "get-transportservice",
    "get-settingoverride",
    "get-organizationconfig",
    "get-authconfig",
    "get-exchangecertificate",
    "test-servicehealth",
    "test-replicationhealth",
];

/// The Exchange cmdlets, and the script's functions that call one (directly or through
/// another such function), lower-cased.
fn exchange_callers(root: Node<'_>, source: &str) -> std::collections::BTreeSet<String> {
    let mut callers: std::collections::BTreeSet<String> =
        EXCHANGE_CMDLETS.iter().map(|c| c.to_string()).collect();
    let functions: Vec<(String, Vec<String>)> = nodes(root)
        .into_iter()
        .filter(|n| n.kind() == "function_statement")
        .filter_map(|f| {
            let mut cursor = f.walk();
            let name = f
                .children(&mut cursor)
                .find(|c| c.kind() == "function_name")?;
            let calls = nodes(f)
                .into_iter()
                .filter(|n| n.kind() == "command_name")
                .map(|n| source[n.byte_range()].to_ascii_lowercase())
                .collect();
            Some((source[name.byte_range()].to_ascii_lowercase(), calls))
        })
        .collect();
    loop {
        let before = callers.len();
        for (name, calls) in &functions {
            if calls.iter().any(|c| callers.contains(c)) {
                callers.insert(name.clone());
            }
        }
        if callers.len() == before {
            return callers;
        }
    }
}

/// In a pipeline whose first command is an Exchange caller, the first Exchange caller a later
/// element runs.
fn nested_exchange_call(
    chain: Node<'_>,
    source: &str,
    exchange: &std::collections::BTreeSet<String>,
) -> Option<String> {
    let mut cursor = chain.walk();
    let commands: Vec<Node<'_>> = chain
        .children(&mut cursor)
        .filter(|c| c.kind() == "command")
        .collect();
    let name_of = |command: Node<'_>| {
        command
            .child_by_field_name("command_name")
            .map(|n| source[n.byte_range()].to_ascii_lowercase())
    };
    let (first, rest) = commands.split_first()?;
    if !name_of(*first).is_some_and(|n| exchange.contains(&n)) {
        return None;
    }
    rest.iter()
        .flat_map(|c| nodes(*c))
        .filter(|n| n.kind() == "command_name")
        .map(|n| source[n.byte_range()].to_string())
        .find(|n| exchange.contains(&n.to_ascii_lowercase()))
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
    let bad = format!(
        "{bad}function Get-Copies {{ Get-MailboxDatabaseCopyStatus -Server x }}\n\
         $n = @(Get-Copies | Where-Object {{ @((Get-MailboxDatabase $_).DatabaseCopies).Count -le 1 }})\n"
    );
    let bad = format!("{bad}$um = ($server.AdminDisplayVersion.Minor -eq 1)\n");
    let found = violations(&bad);
    assert_eq!(found.len(), 5, "{found:#?}");
    let good = "function Get-List { return @(1, 2) }\n\
                # return , is fine in a comment; so is 'return , x' in a string\n\
                function Invoke-Theirs { $ErrorActionPreference = 'Continue'; & $script -x }\n\
                & { $ErrorActionPreference = 'Continue'\n & (Join-Path $d 'a.ps1') }\n\
                & { Write-Output 'a block is not another script' }\n\
                $all = @(Get-MailboxDatabaseCopyStatus -Server x)\n\
                foreach ($c in $all) { Get-MailboxDatabase $c.DatabaseName }\n\
                Get-ChildItem | ForEach-Object { Get-MailboxDatabase $_ }\n\
                Get-ExchangeServer | Select-Object -First 1\n\
                $is2016 = [string] $server.AdminDisplayVersion -match '^Version 15\\.1 '\n";
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
