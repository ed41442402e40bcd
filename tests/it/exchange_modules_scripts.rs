//! The shipped PowerShell scripts under `scripts/`: one per contract id, each starting with its
//! `# salve-script: <id>` line, each parsing cleanly with a real PowerShell grammar
//! (tree-sitter-powershell), each answering with exactly one `##salve-result##` line built by
//! `ConvertTo-Json -Depth 8 -Compress`.

use std::path::PathBuf;

use salve::contract::ScriptId;

fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

fn script(id: ScriptId) -> String {
    let path = scripts_dir().join(format!("{}.ps1", id.as_str()));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every ERROR or MISSING node, with its line and the text around it.
fn syntax_problems(source: &str) -> Vec<String> {
    let mut parser = tree_sitter::Parser::new();
    parser
        .set_language(&tree_sitter_powershell::LANGUAGE.into())
        .unwrap();
    let tree = parser.parse(source, None).unwrap();
    let mut problems = Vec::new();
    let mut cursor = tree.walk();
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        if node.is_error() || node.is_missing() {
            let line = node.start_position().row + 1;
            let text = source.lines().nth(line - 1).unwrap_or_default().trim();
            problems.push(format!("line {line}: {} near `{text}`", node.kind()));
        }
        stack.extend(node.children(&mut cursor));
    }
    problems
}

#[test]
fn every_contract_id_has_exactly_one_script_and_no_stray_files() {
    let mut ids: Vec<String> = std::fs::read_dir(scripts_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    let mut want: Vec<String> = ScriptId::ALL
        .iter()
        .map(|id| format!("{}.ps1", id.as_str()))
        .collect();
    // The standard the scripts are reviewed against sits beside them.
    want.push("README.md".to_string());
    want.sort();
    assert_eq!(ids, want);
}

#[test]
fn each_script_names_its_contract_id_on_the_first_line() {
    for id in ScriptId::ALL {
        let text = script(id);
        let first = text.lines().next().unwrap_or_default();
        let named = first.strip_prefix(salve::script::ID_MARKER);
        assert_eq!(
            named,
            Some(id.as_str()),
            "first line of {}.ps1",
            id.as_str()
        );
        assert_eq!(ScriptId::parse(named.unwrap()), Some(id));
    }
}

#[test]
fn each_script_parses_with_a_real_powershell_grammar() {
    let mut report = Vec::new();
    for id in ScriptId::ALL {
        for p in syntax_problems(&script(id)) {
            report.push(format!("{}.ps1 {p}", id.as_str()));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[test]
fn the_grammar_check_catches_broken_powershell() {
    assert!(syntax_problems("if ($x) { Write-Output 1 }\n").is_empty());
    assert!(!syntax_problems("if ($x) { Write-Output 1 \n").is_empty());
    assert!(!syntax_problems("$a = @{ x = 1 \n").is_empty());
}

#[test]
fn each_script_answers_through_the_result_marker_with_compressed_json() {
    for id in ScriptId::ALL {
        let text = script(id);
        let answers: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("'##salve-result## '"))
            .collect();
        assert!(!answers.is_empty(), "{} prints no result line", id.as_str());
        for line in answers {
            assert!(
                line.contains("ConvertTo-Json -InputObject $answer -Depth 8 -Compress"),
                "{}: {line}",
                id.as_str()
            );
        }
        // Arguments come only from $SalveArgs, never from param() or $args.
        assert!(!text.contains("param("), "{}", id.as_str());
    }
}
