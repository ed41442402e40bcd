//! One table says what a module is (`salve::modules::table()`): nothing outside
//! `src/modules/` treats a module by its name — no `== "reboot"`, no `"exchange_update" =>`
//! arm, no `contains(&"...")`, no second list of module names. Such code is how a module gets
//! forgotten (no durable intent before it changes a host, let through an approved plan's gate
//! by analogy); it reads the module's spec instead. Test code is exempt (tests name modules to
//! build tasks), and so is the lab crate, the far side, where scripts share names with modules.

use std::path::Path;

use super::graph::rust_files;
use super::source::without_test_code;

/// Every place under `src` (outside `src/modules/`) that tests for, or lists, module names.
pub fn name_tests(src: &Path, names: &[&str]) -> Vec<String> {
    let literal = regex::Regex::new(r#""([a-z_]+)""#).unwrap();
    let array = regex::Regex::new(r"\[[^\[\]]*\]").unwrap();
    let mut found = Vec::new();
    let mut skip = vec![src.join("modules")];
    for file in rust_files(src) {
        if skip.iter().any(|s| file.starts_with(s)) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let (code, test_modules) = without_test_code(&text);
        skip.extend(
            test_modules
                .iter()
                .map(|m| file.with_file_name(format!("{m}.rs"))),
        );
        let shown = file.strip_prefix(src).unwrap().display().to_string();
        for m in literal.captures_iter(&code) {
            let (whole, name) = (m.get(0).unwrap(), &m[1]);
            if !names.contains(&name) {
                continue;
            }
            let before = code[..whole.start()].trim_end();
            let after = code[whole.end()..].trim_start();
            let tested = [
                "==",
                "!=",
                "|",
                "contains(&",
                "contains(",
                "matches!(",
                "eq(",
            ]
            .iter()
            .any(|t| before.ends_with(t))
                || ["==", "!=", "=>", "|", "if "]
                    .iter()
                    .any(|t| after.starts_with(t));
            if tested {
                found.push(format!("{shown}: tests for module \"{name}\""));
            }
        }
        for list in array.find_iter(&code) {
            let listed: Vec<&str> = literal
                .captures_iter(list.as_str())
                .filter_map(|m| names.iter().find(|n| **n == &m[1]).copied())
                .collect();
            if listed.len() >= 2 {
                found.push(format!("{shown}: lists modules {listed:?}"));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind of name test is caught; comments and test code are not read.
    #[test]
    fn each_kind_of_name_test_is_found() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.rs"),
            "fn a(m: &str) -> bool { m == \"reboot\" }\n\
             fn b(m: &str) -> u8 { match m { \"pause\" => 1, _ => 0 } }\n\
             const L: &[&str] = &[\"reboot\", \"pause\"];\n\
             // \"reboot\" == m\n\
             #[cfg(test)]\nmod t { fn c(m: &str) -> bool { m == \"pause\" } }\n",
        )
        .unwrap();
        let found = name_tests(dir.path(), &["reboot", "pause"]);
        assert_eq!(
            found,
            [
                "a.rs: tests for module \"reboot\"",
                "a.rs: tests for module \"pause\"",
                "a.rs: lists modules [\"reboot\", \"pause\"]"
            ]
        );
    }
}
