//! The import graphs of one crate and the cycles in them.
//!
//! Each folder of the crate (its `src/` root included) has one graph whose nodes are the
//! modules directly in it (`queue/intents.rs`, `queue/worker.rs`, a subfolder `lab/winrm/`).
//! A reference from module `S` to module `T` is an edge in the graph of their deepest common
//! folder, between the two children of that folder on the way to `S` and to `T`: so
//! `crate::runner::x` named in `plan/collect.rs` is `plan -> runner` in the root graph, and
//! `super::worker::f` named in `queue/intents.rs` is `intents -> worker` in `queue/`'s graph.
//! A reference from a module to its own ancestor or descendant (a `mod.rs` facade re-exporting
//! its children, a child using its parent's types) is no edge. A cycle is a strongly connected
//! set of two or more nodes in one graph.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::references::references;
use super::source::{strip, tokens};

/// Where an edge comes from: the file and line of its first reference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Site {
    pub file: String,
    pub line: usize,
}

/// One folder's graph: edges between its children, each with the first site naming it.
type Graph = BTreeMap<(String, String), Site>;

/// The import graphs of the crate whose sources are under `src`, keyed by folder (`""` for the
/// crate root, `"queue"`, `"lab/winrm"`). Sites are shown relative to `shown_from`.
pub fn graphs(src: &Path, shown_from: &Path) -> BTreeMap<String, Graph> {
    let files = rust_files(src);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut graphs: BTreeMap<String, Graph> = BTreeMap::new();
    for file in &files {
        let from = module_of(src, file);
        let text = std::fs::read_to_string(file).unwrap();
        let shown = file
            .strip_prefix(shown_from)
            .unwrap_or(file)
            .display()
            .to_string();
        for reference in references(&tokens(&strip(&text)), &from) {
            let to = innermost_module(&modules, &reference.path);
            if let Some((folder, edge)) = sibling_edge(&from, &to) {
                let site = Site {
                    file: shown.clone(),
                    line: reference.line,
                };
                let graph = graphs.entry(folder).or_default();
                let first = graph.entry(edge).or_insert_with(|| site.clone());
                *first = site.min(first.clone());
            }
        }
    }
    graphs
}

/// The cycles of every graph, each described with the site of each of its edges.
pub fn cycles(graphs: &BTreeMap<String, Graph>, src_label: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (folder, graph) in graphs {
        for component in strong_components(graph) {
            let place = format!("{src_label}/{folder}")
                .trim_end_matches('/')
                .to_string();
            found.push(describe(&place, graph, &component));
        }
    }
    found
}

/// Every `.rs` file under `dir`, sorted.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The module a file defines: `src/queue/worker.rs` and `src/queue/worker/mod.rs` are
/// `["queue", "worker"]`; `src/lib.rs` and `src/main.rs` are the crate root `[]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut path: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if path.last().is_some_and(|last| last == "mod")
        || matches!(path.as_slice(), [one] if one == "lib" || one == "main")
    {
        path.pop();
    }
    path
}

/// The longest prefix of `path` that is a module with a file (`queue::worker::Worker` is in
/// `queue::worker`).
fn innermost_module(modules: &BTreeSet<Vec<String>>, path: &[String]) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|len| path[..len].to_vec())
        .find(|prefix| modules.contains(prefix))
        .unwrap_or_default()
}

/// The folder and edge a reference from `from` to `to` adds, if neither contains the other.
fn sibling_edge(from: &[String], to: &[String]) -> Option<(String, (String, String))> {
    let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    let (child_from, child_to) = (from.get(common)?, to.get(common)?);
    Some((
        from[..common].join("/"),
        (child_from.clone(), child_to.clone()),
    ))
}

/// The strongly connected sets of two or more nodes, each sorted, in node order.
fn strong_components(graph: &Graph) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = graph.keys().flat_map(|(a, b)| [a, b]).collect();
    let reach: BTreeMap<&String, BTreeSet<&String>> =
        nodes.iter().map(|n| (*n, reachable(graph, n))).collect();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut components = Vec::new();
    for node in &nodes {
        if seen.contains(*node) {
            continue;
        }
        let component: Vec<String> = reach[node]
            .iter()
            .filter(|other| reach[*other].contains(node))
            .map(|other| (*other).clone())
            .collect();
        seen.extend(component.iter().cloned());
        if component.len() > 1 {
            components.push(component);
        }
    }
    components
}

/// The nodes reachable from `start` by one or more edges.
fn reachable<'g>(graph: &'g Graph, start: &str) -> BTreeSet<&'g String> {
    let mut found = BTreeSet::new();
    let mut queue = VecDeque::from([start.to_owned()]);
    while let Some(node) = queue.pop_front() {
        for (_, to) in graph.keys().filter(|(from, _)| *from == node) {
            if found.insert(to) {
                queue.push_back(to.clone());
            }
        }
    }
    found
}

/// A shortest loop through the component's first node, then every edge inside the component
/// with its site.
fn describe(place: &str, graph: &Graph, component: &[String]) -> String {
    let inside = |(a, b): &(String, String)| component.contains(a) && component.contains(b);
    let mut text = format!(
        "{place}: {}\n",
        shortest_loop(graph, component).join(" -> ")
    );
    for (edge, site) in graph.iter().filter(|(edge, _)| inside(edge)) {
        let _ = writeln!(
            text,
            "    {} -> {}  {}:{}",
            edge.0, edge.1, site.file, site.line
        );
    }
    text
}

/// The nodes of a shortest loop from the component's first node back to it (first node
/// repeated at the end), found breadth-first.
fn shortest_loop(graph: &Graph, component: &[String]) -> Vec<String> {
    let start = &component[0];
    let mut came_from: BTreeMap<&String, &String> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for (_, to) in graph.keys().filter(|(from, _)| from == node) {
            if to == start {
                let mut path = vec![start.clone(), node.clone()];
                let mut at = node;
                while let Some(previous) = came_from.get(at) {
                    path.push((*previous).clone());
                    at = previous;
                }
                path.reverse();
                return path;
            }
            if component.contains(to) && !came_from.contains_key(to) {
                came_from.insert(to, node);
                queue.push_back(to);
            }
        }
    }
    component.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Vec<String> {
        text.split("::")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    fn edge(from: &str, to: &str) -> Option<(String, (String, String))> {
        sibling_edge(&path(from), &path(to))
    }

    #[test]
    fn an_edge_joins_the_children_of_the_deepest_common_folder() {
        let e = |folder: &str, a: &str, b: &str| Some((folder.into(), (a.into(), b.into())));
        assert_eq!(edge("plan::collect", "runner"), e("", "plan", "runner"));
        assert_eq!(
            edge("queue::intents", "queue::worker"),
            e("queue", "intents", "worker")
        );
        assert_eq!(
            edge("lab::winrm::server", "lab::fleet"),
            e("lab", "winrm", "fleet")
        );
    }

    #[test]
    fn a_facade_and_its_children_are_no_edge() {
        assert_eq!(edge("queue", "queue::worker"), None);
        assert_eq!(edge("queue::worker", "queue"), None);
        assert_eq!(edge("", "cli"), None);
    }

    #[test]
    fn a_loop_is_reported_with_the_site_of_each_edge() {
        let site = |line| Site {
            file: "f.rs".into(),
            line,
        };
        let graph: Graph = [
            (("a".into(), "b".into()), site(1)),
            (("b".into(), "c".into()), site(2)),
            (("c".into(), "a".into()), site(3)),
            (("c".into(), "d".into()), site(4)),
        ]
        .into();
        let components = strong_components(&graph);
        assert_eq!(components, [["a", "b", "c"]]);
        assert_eq!(
            describe("src", &graph, &components[0]),
            "src: a -> b -> c -> a\n    a -> b  f.rs:1\n    b -> c  f.rs:2\n    c -> a  f.rs:3\n"
        );
    }
}
