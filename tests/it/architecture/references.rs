//! Every module path a file names, resolved to an absolute path from its crate's root.
//!
//! A reference starts at `crate::`, `$crate::`, `super::` or `self::` (in a `use`, a `pub use`
//! or an expression) and runs through `::`-separated segments and `{...}` groups, so
//! `use crate::{a::X, b::{c, d}}` names `a::X`, `b::c` and `b::d`. `super` and `self` are
//! resolved against the file's module and any inline `mod name { ... }` around them (a test
//! module's `use super::*` is the file itself). Bare paths (`child::f`, `std::...`) are not
//! followed: in a module they name its own children or other crates, which never make a cycle
//! between siblings.

use super::source::Token;

/// An absolute path (segments from the crate root, without `crate`) and the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub path: Vec<String>,
    pub line: usize,
}

/// The references in `tokens`, a file whose module is `module` (e.g. `["queue", "worker"]`).
pub fn references(tokens: &[Token], module: &[String]) -> Vec<Reference> {
    let mut found = Vec::new();
    let mut scope = Scope::new(module);
    let mut i = 0;
    while i < tokens.len() {
        if starts_path(tokens, i) {
            let mut leaves = Vec::new();
            i = use_tree(tokens, i, &mut Vec::new(), &mut leaves);
            found.extend(leaves.into_iter().filter_map(|leaf| scope.resolve(leaf)));
        } else {
            scope.step(tokens, i);
            i += 1;
        }
    }
    found
}

/// `crate`, `super` or `self` followed by `::`, and not itself the tail of a longer path.
fn starts_path(tokens: &[Token], i: usize) -> bool {
    let text = |k: usize| tokens.get(k).map(|t| t.text.as_str());
    matches!(text(i), Some("crate" | "super" | "self"))
        && text(i + 1) == Some("::")
        && (i == 0 || text(i - 1) != Some("::"))
}

/// Parses one use tree at `i` (a path, possibly ending in a `{...}` group or `*`), pushing one
/// relative path per leaf onto `leaves`; returns the index after the tree.
fn use_tree(
    tokens: &[Token],
    mut i: usize,
    prefix: &mut Vec<String>,
    leaves: &mut Vec<Reference>,
) -> usize {
    let depth = prefix.len();
    let mut line = tokens[i].line;
    while let Some(token) = tokens.get(i) {
        match token.text.as_str() {
            "{" => {
                i = group(tokens, i + 1, prefix, leaves);
                prefix.truncate(depth);
                return i;
            }
            "*" => {
                i += 1;
                break;
            }
            text if is_ident(text) => {
                prefix.push(text.to_string());
                line = token.line;
                i += 1;
            }
            _ => break,
        }
        if tokens.get(i).map(|t| t.text.as_str()) != Some("::") {
            break;
        }
        i += 1;
    }
    leaves.push(Reference {
        path: prefix.clone(),
        line,
    });
    prefix.truncate(depth);
    i
}

/// Parses the trees of a `{...}` group whose first tree starts at `i`; returns the index after
/// the closing brace. `as name` renames are skipped.
fn group(
    tokens: &[Token],
    mut i: usize,
    prefix: &mut Vec<String>,
    leaves: &mut Vec<Reference>,
) -> usize {
    loop {
        match tokens.get(i).map(|t| t.text.as_str()) {
            None => return i,
            Some("}") => return i + 1,
            Some(",") => i += 1,
            Some("as") => i += 2,
            Some(_) => {
                let next = use_tree(tokens, i, prefix, leaves);
                i = next.max(i + 1);
            }
        }
    }
}

fn is_ident(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
}

/// The module the scanner is in: the file's module plus the inline modules open around it.
struct Scope {
    module: Vec<String>,
    /// The brace depth inside each open inline module, innermost last.
    inline: Vec<usize>,
    depth: usize,
    /// `mod name` just seen; its `{` opens an inline module.
    pending: Option<String>,
}

impl Scope {
    fn new(module: &[String]) -> Self {
        Scope {
            module: module.to_vec(),
            inline: Vec::new(),
            depth: 0,
            pending: None,
        }
    }

    /// Follows braces and `mod name {` at token `i`.
    fn step(&mut self, tokens: &[Token], i: usize) {
        match tokens[i].text.as_str() {
            "mod" => self.pending = tokens.get(i + 1).map(|t| t.text.clone()),
            "{" => {
                self.depth += 1;
                if let Some(name) = self.pending.take() {
                    self.module.push(name);
                    self.inline.push(self.depth);
                }
            }
            "}" => {
                if self.inline.last() == Some(&self.depth) {
                    self.inline.pop();
                    self.module.pop();
                }
                self.depth = self.depth.saturating_sub(1);
            }
            ";" => self.pending = None,
            _ => {}
        }
    }

    /// `leaf` (starting with `crate`, `super` or `self`) as an absolute path; `self` leaves of
    /// groups (`a::{self, B}`) name the prefix. `None` for `super` above the crate root.
    fn resolve(&self, leaf: Reference) -> Option<Reference> {
        let mut path = Vec::new();
        let mut segments = leaf.path.into_iter().peekable();
        match segments.peek().map(String::as_str) {
            Some("crate") => {
                segments.next();
            }
            _ => path.clone_from(&self.module),
        }
        for segment in segments {
            match segment.as_str() {
                "self" => {}
                "super" => {
                    path.pop()?;
                }
                _ => path.push(segment),
            }
        }
        Some(Reference {
            path,
            line: leaf.line,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::source::{strip, tokens};
    use super::*;

    /// The references of `src` in module `a::b`, as `path@line` strings.
    fn refs(src: &str) -> Vec<String> {
        let module = ["a".to_string(), "b".to_string()];
        references(&tokens(&strip(src)), &module)
            .into_iter()
            .map(|r| format!("{}@{}", r.path.join("::"), r.line))
            .collect()
    }

    #[test]
    fn a_use_group_names_each_leaf() {
        assert_eq!(
            refs("use crate::{a::X, b::{c, d as e}, f::*};"),
            ["a::X@1", "b::c@1", "b::d@1", "f@1"]
        );
    }

    #[test]
    fn a_multi_line_group_keeps_each_leafs_line() {
        assert_eq!(
            refs("use crate::{\n    x::Y,\n    z::{self, W},\n};"),
            ["x::Y@2", "z@3", "z::W@3"]
        );
    }

    #[test]
    fn super_and_self_resolve_against_the_file_module() {
        assert_eq!(
            refs("use super::super::x;\npub use self::y::Z;\nuse super::{c, d::E};"),
            ["x@1", "a::b::y::Z@2", "a::c@3", "a::d::E@3"]
        );
    }

    #[test]
    fn paths_in_expressions_and_macros_count() {
        assert_eq!(
            refs("fn f() { crate::q::run(); $crate::m::g() }"),
            ["q::run@1", "m::g@1"]
        );
    }

    #[test]
    fn an_inline_module_shifts_super() {
        assert_eq!(
            refs("mod tests {\n    use super::*;\n    use super::super::c::D;\n}\nuse super::e;"),
            ["a::b@2", "a::c::D@3", "a::e@5"]
        );
    }

    #[test]
    fn paths_in_comments_strings_and_bare_paths_are_ignored() {
        let src = "// use crate::x;\n/// [crate::y]\nlet s = \"crate::z\";\nuse std::fmt; child::f(); self.g(); Self::h();";
        assert!(refs(src).is_empty(), "{:?}", refs(src));
    }

    #[test]
    fn visibility_restrictions_are_not_paths() {
        assert!(refs("pub(crate) fn f() {} pub(super) struct S;").is_empty());
    }
}
