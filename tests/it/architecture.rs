//! The architecture checks: no import cycles between a crate's modules, and no list of module
//! names outside the module table ([`module_names`]).
//!
//! Reads every `.rs` file of each crate in this repository (`src/`, and `crates/*/src/` for the
//! workspace members), blanks out comments and literals ([`source`]), collects the module paths
//! each file names through `crate::`, `super::` and `self::` ([`references`]), and builds one
//! graph per folder between the modules directly in it ([`graph`]): the top-level modules
//! (`cli`, `config`, `runner`, ...) in the crate root's graph, sibling files such as
//! `queue/intents.rs` and `queue/worker.rs` in their folder's graph. A parent naming its
//! children (a `mod.rs` facade) or a child naming its parent is not an edge. Any loop in any
//! graph fails the test, printed with the file:line of each edge in it.
//!
//! Deliberately small and dependency-free (no rust-analyzer): it reads paths, not name
//! resolution, so an import through a parent's re-export (`crate::queue::Worker`) counts as
//! naming the parent only.

mod graph;
mod module_names;
mod references;
mod source;

use std::path::{Path, PathBuf};

/// Each crate of the repository: the root package's `src/` and every `crates/*/src/`.
fn crate_sources(root: &Path) -> Vec<PathBuf> {
    let mut sources = vec![root.join("src")];
    if let Ok(members) = std::fs::read_dir(root.join("crates")) {
        let mut members: Vec<PathBuf> = members.map(|m| m.unwrap().path().join("src")).collect();
        members.sort();
        sources.extend(members.into_iter().filter(|src| src.is_dir()));
    }
    sources
}

#[test]
// No module imports one that imports it back, directly or round a loop: a crate's top-level
// modules, and the sibling files of each folder (see the module docs). Issue 14 removed the
// seven cycles this check found when it was written.
fn no_import_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cycles = Vec::new();
    for src in crate_sources(root) {
        let label = src.strip_prefix(root).unwrap().display().to_string();
        cycles.extend(graph::cycles(&graph::graphs(&src, root), &label));
    }
    assert!(
        cycles.is_empty(),
        "{} import cycle(s); move what both sides need down a layer:\n\n{}",
        cycles.len(),
        cycles.join("\n")
    );
}

#[test]
// What a module is lives in its spec in `salve::modules`; no other list of module names exists.
fn no_other_list_of_module_names_exists() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = module_names::name_tests(&src, &salve::modules::names());
    assert!(
        found.is_empty(),
        "module properties belong in their ModuleSpec (src/modules/spec.rs):\n{}",
        found.join("\n")
    );
}

#[test]
// Every module's source declares a spec, and every spec is in the table, once, under the name
// of its file (or folder).
fn every_module_declares_its_spec_in_the_table() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/modules");
    let mut declared: Vec<String> = graph::rust_files(&dir)
        .into_iter()
        .filter(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .any(|l| l.starts_with("pub const SPEC: ModuleSpec"))
        })
        .map(|f| {
            let f = f.strip_prefix(&dir).unwrap();
            let first = f.iter().next().unwrap().to_string_lossy().to_string();
            first.trim_end_matches(".rs").to_string()
        })
        .collect();
    declared.sort();
    let mut registered = salve::modules::names();
    registered.sort();
    assert_eq!(declared, registered);
    let mut unique = registered.clone();
    unique.dedup();
    assert_eq!(unique, registered, "a module is in the table twice");
}
