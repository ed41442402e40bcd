//! YAML reading shared by the inventory and playbook loaders: parse a file into a marked-yaml
//! [`Node`] tree (every node knows its line and column), turn parser failures into
//! [`Diagnostic`]s, and convert scalars to JSON values.
//!
//! marked-yaml keeps every scalar as text. Salve types plain (unquoted) scalars with the YAML 1.2
//! core schema: `true`/`false`, `null`/`~`/empty, integers (also `0x`/`0o`) and floats. Quoted
//! scalars always stay strings, so `"5985"` is text and `5985` a number. Fields that expect a
//! boolean also take Ansible's `yes`/`no`/`on`/`off` ([`Doc::bool`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode, MarkedSequenceNode};
use marked_yaml::{LoadError, LoaderOptions, Node, Span};
use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

use crate::diag::{Diagnostic, Diagnostics, Location};

/// Which shape the top level of a file must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopLevel {
    Mapping,
    Sequence,
}

/// One parsed input file: its path (shared by every [`Location`]), text digest and node tree.
#[derive(Debug)]
pub struct Doc {
    pub file: Arc<PathBuf>,
    pub bytes: Vec<u8>,
    pub root: Node,
}

/// SHA-256 of some bytes, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Doc {
    /// Read and parse a file. Failure is a single diagnostic: the YAML parser stops at the first
    /// syntax error, so there is nothing more to collect.
    pub fn read(path: &Path, top: TopLevel) -> Result<Doc, Diagnostic> {
        let bytes = std::fs::read(path)
            .map_err(|e| Diagnostic::in_file(path, format!("cannot read file: {e}")))?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| Diagnostic::in_file(path, "file is not valid UTF-8 text"))?;
        Self::parse(path, &text, bytes, top)
    }

    fn parse(path: &Path, text: &str, bytes: Vec<u8>, top: TopLevel) -> Result<Doc, Diagnostic> {
        let file = Arc::new(path.to_path_buf());
        let options = LoaderOptions::default()
            .error_on_duplicate_keys(true)
            .prevent_coercion(true);
        let options = match top {
            TopLevel::Mapping => options.toplevel_mapping(),
            TopLevel::Sequence => options.toplevel_sequence(),
        };
        if let Some(line) = second_document(text) {
            return Err(Diagnostic::at(
                Location::new(&file, line, 1),
                "",
                "a second YAML document starts here",
            )
            .with_hint("salve reads one document per file; split it into two files"));
        }
        let root = marked_yaml::parse_yaml_with_options(0, text, options)
            .map_err(|e| load_error(&file, e, top))?;
        let doc = Doc { file, bytes, root };
        // An empty file parses as an empty mapping whatever was asked for.
        if top == TopLevel::Sequence && doc.root.as_sequence().is_none() {
            let is_empty = doc.root.as_mapping().is_some_and(|m| m.is_empty());
            if !is_empty {
                return Err(Diagnostic::at(
                    doc.loc(&doc.root),
                    "",
                    "expected a list at the top level",
                ));
            }
            let span = *doc.root.span();
            return Ok(Doc {
                root: Node::Sequence(MarkedSequenceNode::new_empty(span)),
                ..doc
            });
        }
        Ok(doc)
    }

    /// Location of a span's start (line 1, column 1 when the parser gave none).
    pub fn span_loc(&self, span: &Span) -> Location {
        match span.start() {
            Some(m) => Location::new(&self.file, m.line().max(1), m.column().max(1)),
            None => Location::new(&self.file, 1, 1),
        }
    }

    /// Where a node starts; a block mapping is placed at its first key.
    pub fn loc(&self, node: &Node) -> Location {
        match node {
            Node::Mapping(m) => match m.keys().next() {
                Some(first) => self.key_loc(first),
                None => self.span_loc(node.span()),
            },
            _ => self.span_loc(node.span()),
        }
    }

    pub fn key_loc(&self, key: &MarkedScalarNode) -> Location {
        self.span_loc(key.span())
    }

    /// A diagnostic at a node.
    pub fn error(&self, node: &Node, field: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(self.loc(node), field, message)
    }

    /// The node as a mapping; a null value counts as an empty mapping. Reports a wrong type.
    pub fn mapping<'n>(
        &self,
        node: &'n Node,
        field: &str,
        what: &str,
        diags: &mut Diagnostics,
    ) -> Option<Mapping<'n>> {
        match node {
            Node::Mapping(m) => Some(Mapping::Map(m)),
            Node::Scalar(s) if is_null(s) => Some(Mapping::Empty),
            other => {
                diags.push(self.wrong_type(other, field, what));
                None
            }
        }
    }

    /// A "expected X, found Y" diagnostic.
    pub fn wrong_type(&self, node: &Node, field: &str, expected: &str) -> Diagnostic {
        self.error(
            node,
            field,
            format!("expected {expected}, found {}", describe(node)),
        )
    }

    /// A boolean, accepting Ansible's `yes`/`no`/`on`/`off` spellings in plain scalars.
    pub fn bool(&self, node: &Node, field: &str) -> Result<bool, Diagnostic> {
        if let Node::Scalar(s) = node
            && s.may_coerce()
        {
            match s.as_str() {
                "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => {
                    return Ok(true);
                }
                "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
                    return Ok(false);
                }
                _ => {}
            }
        }
        Err(self.wrong_type(node, field, "true or false"))
    }

    /// A non-negative whole number (plain or quoted digits).
    pub fn count(&self, node: &Node, field: &str) -> Result<u64, Diagnostic> {
        match node {
            Node::Scalar(s) => s
                .as_str()
                .trim()
                .parse::<u64>()
                .map_err(|_| self.wrong_type(node, field, "a whole number")),
            _ => Err(self.wrong_type(node, field, "a whole number")),
        }
    }

    /// A string scalar (numbers and booleans are taken as their text, as Ansible does).
    pub fn string<'n>(&self, node: &'n Node, field: &str) -> Result<&'n str, Diagnostic> {
        match node {
            Node::Scalar(s) if !is_null(s) => Ok(s.as_str()),
            _ => Err(self.wrong_type(node, field, "a string")),
        }
    }

    /// A string or a list of strings, as `when`, `notify` and `tags` take.
    pub fn strings<'n>(
        &self,
        node: &'n Node,
        field: &str,
        diags: &mut Diagnostics,
    ) -> Vec<(&'n str, &'n Node)> {
        match node {
            Node::Sequence(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match self.string(item, &index(field, i)) {
                    Ok(s) => Some((s, item)),
                    Err(d) => {
                        diags.push(d);
                        None
                    }
                })
                .collect(),
            _ => match self.string(node, field) {
                Ok(s) => vec![(s, node)],
                Err(_) => {
                    diags.push(self.wrong_type(node, field, "a string or a list of strings"));
                    Vec::new()
                }
            },
        }
    }
}

/// A mapping that may have been written as null (`hosts:` with nothing after it).
#[derive(Debug, Clone, Copy)]
pub enum Mapping<'n> {
    Map(&'n MarkedMappingNode),
    Empty,
}

impl<'n> Mapping<'n> {
    pub fn entries(self) -> Box<dyn Iterator<Item = (&'n MarkedScalarNode, &'n Node)> + 'n> {
        match self {
            Mapping::Map(m) => Box::new(m.iter()),
            Mapping::Empty => Box::new(std::iter::empty()),
        }
    }
}

/// Is this scalar a YAML null (`~`, `null`, or nothing at all)?
pub fn is_null(s: &MarkedScalarNode) -> bool {
    s.may_coerce() && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL")
}

/// What a node is, for "expected X, found Y" messages.
pub fn describe(node: &Node) -> String {
    match node {
        Node::Mapping(_) => "a mapping".into(),
        Node::Sequence(_) => "a list".into(),
        Node::Scalar(s) => crate::model::host_var::describe(&scalar_value(s)),
    }
}

/// A field path with a key appended: `a.b`, or `a["ex01.contoso.local"]` for keys that are
/// not simple identifiers.
pub fn child(path: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), simple) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key:?}]"),
    }
}

/// A field path with a list index appended: `a[3]`.
pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A node as JSON, typing plain scalars with the YAML 1.2 core schema.
pub fn to_json(node: &Node) -> Value {
    match node {
        Node::Scalar(s) => scalar_value(s),
        Node::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        Node::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().to_string(), to_json(v)))
                .collect(),
        ),
    }
}

/// A scalar as JSON: quoted scalars are strings, plain ones are typed by [`infer_plain`].
pub fn scalar_value(s: &MarkedScalarNode) -> Value {
    if s.may_coerce() {
        infer_plain(s.as_str())
    } else {
        Value::String(s.as_str().to_string())
    }
}

/// Type a plain scalar with the YAML 1.2 core schema. Infinities and NaN, which JSON cannot
/// hold, stay strings.
pub fn infer_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = parse_int(text) {
        return Value::Number(n);
    }
    if is_core_float(text)
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

fn parse_int(text: &str) -> Option<Number> {
    let (radix, digits, negative) = if let Some(hex) = text.strip_prefix("0x") {
        (16, hex, false)
    } else if let Some(oct) = text.strip_prefix("0o") {
        (8, oct, false)
    } else if let Some(rest) = text.strip_prefix('-') {
        (10, rest, true)
    } else {
        (10, text.strip_prefix('+').unwrap_or(text), false)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if negative {
        i64::from_str_radix(&format!("-{digits}"), radix)
            .ok()
            .map(Number::from)
    } else {
        u64::from_str_radix(digits, radix).ok().map(Number::from)
    }
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_core_float(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (digits(int) && (frac.is_empty() || digits(frac))) || (int.is_empty() && digits(frac))
        }
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// The line of a `---` that starts a second document (the parser would silently drop it).
fn second_document(text: &str) -> Option<usize> {
    let mut content = false;
    for (i, line) in text.lines().enumerate() {
        let is_marker = line == "---" || line.starts_with("--- ");
        if is_marker && content {
            return Some(i + 1);
        }
        let trimmed = line.trim();
        content |= !is_marker
            && !trimmed.is_empty()
            && !trimmed.starts_with('#')
            && !trimmed.starts_with('%');
    }
    None
}

fn load_error(file: &Arc<PathBuf>, e: LoadError, top: TopLevel) -> Diagnostic {
    let at = |m: &marked_yaml::Marker| Location::new(file, m.line().max(1), m.column().max(1));
    match e {
        LoadError::TopLevelMustBeMapping(m) => {
            Diagnostic::at(at(&m), "", "expected a mapping at the top level")
                .with_hint("an inventory starts with group names, e.g. `all:`")
        }
        LoadError::TopLevelMustBeSequence(m) => {
            let d = Diagnostic::at(at(&m), "", "expected a list at the top level");
            match top {
                TopLevel::Sequence => d.with_hint(
                    "a playbook is a list of plays: start each play with `- hosts: ...`",
                ),
                TopLevel::Mapping => d,
            }
        }
        LoadError::UnexpectedAnchor(m) => Diagnostic::at(
            at(&m),
            "",
            "YAML anchors and aliases (`&name`, `*name`, `<<:`) are not supported",
        )
        .with_hint("write the values out in full, or move shared values into group `vars:`"),
        LoadError::MappingKeyMustBeScalar(m) => {
            Diagnostic::at(at(&m), "", "mapping keys must be plain strings")
        }
        LoadError::UnexpectedTag(m) => {
            Diagnostic::at(at(&m), "", "YAML tags (`!name`) are not supported")
                .with_hint("remove the tag; quote the value if it must stay a string")
        }
        LoadError::ScanError(m, e) => {
            Diagnostic::at(at(&m), "", format!("invalid YAML: {}", scan_message(&e)))
        }
        LoadError::DuplicateKey(inner) => {
            let first = inner
                .prev_key
                .span()
                .start()
                .map(|m| at(m).to_string())
                .unwrap_or_default();
            let key = inner.key.as_str().to_string();
            let loc = inner
                .key
                .span()
                .start()
                .map(at)
                .unwrap_or_else(|| Location::new(file, 1, 1));
            Diagnostic::at(loc, "", format!("duplicate key `{key}`"))
                .with_hint(format!("`{key}` is already set at {first}; keep only one"))
        }
    }
}

fn scan_message(e: &impl std::fmt::Display) -> String {
    // The scanner's message is prefixed with its own (0-based) position; keep only the text.
    let text = e.to_string();
    match text.split_once(" at byte ") {
        Some((msg, _)) => msg.to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str, top: TopLevel) -> Result<Doc, Diagnostic> {
        Doc::parse(Path::new("t.yml"), text, text.as_bytes().to_vec(), top)
    }

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        let doc = parse(
            "a: true\nb: 'true'\nc: 5985\nd: \"5985\"\ne: 1.5\nf: ~\ng:\nh: yes\ni: 0x1F\nj: -3\nk: 1e3\nl: .inf\nm: 1.2.3\n",
            TopLevel::Mapping,
        )
        .unwrap();
        assert_eq!(
            to_json(&doc.root),
            json!({"a": true, "b": "true", "c": 5985, "d": "5985", "e": 1.5, "f": null, "g": null,
                   "h": "yes", "i": 31, "j": -3, "k": 1000.0, "l": ".inf", "m": "1.2.3"})
        );
    }

    #[test]
    fn positions_are_one_based() {
        let doc = parse("all:\n  hosts:\n    ex01:\n", TopLevel::Mapping).unwrap();
        let all = doc.root.as_mapping().unwrap().get_node("all").unwrap();
        let hosts = all.as_mapping().unwrap().get_node("hosts").unwrap();
        let (key, _) = hosts.as_mapping().unwrap().iter().next().unwrap();
        let loc = doc.key_loc(key);
        assert_eq!((loc.line, loc.column), (3, 5));
    }

    #[test]
    fn anchors_duplicates_and_tags_are_explained() {
        let e = parse("a: &x 1\nb: *x\n", TopLevel::Mapping).unwrap_err();
        assert!(e.message.contains("anchors"), "{e}");
        let e = parse("a: 1\nb: 2\na: 3\n", TopLevel::Mapping).unwrap_err();
        assert_eq!(
            (e.location.as_ref().unwrap().line, e.message.as_str()),
            (3, "duplicate key `a`")
        );
        assert!(e.hint.unwrap().contains("t.yml:1:1"));
        let e = parse("a: !Ref x\n", TopLevel::Mapping).unwrap_err();
        assert!(e.message.contains("tags"), "{e}");
    }

    #[test]
    fn second_documents_are_refused() {
        assert!(parse("---\na: 1\n", TopLevel::Mapping).is_ok());
        let e = parse("# c\n---\na: 1\n---\nb: 2\n", TopLevel::Mapping).unwrap_err();
        assert_eq!(e.location.unwrap().line, 4);
    }

    #[test]
    fn empty_file_is_an_empty_list_when_a_list_is_expected() {
        let doc = parse("", TopLevel::Sequence).unwrap();
        assert!(doc.root.as_sequence().unwrap().is_empty());
        assert!(parse("a: 1\n", TopLevel::Sequence).is_err());
    }

    #[test]
    fn paths_quote_odd_keys() {
        assert_eq!(
            child("all.hosts", "ex01.contoso.local"),
            "all.hosts[\"ex01.contoso.local\"]"
        );
        assert_eq!(child("", "all"), "all");
        assert_eq!(index("plays", 2), "plays[2]");
    }
}
