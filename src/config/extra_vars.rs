//! Extra variables from the command line: `-e key=value`, whose value is read as a YAML scalar
//! with the same typing as in files (`-e reboot=false` is a boolean, `-e 'name="007"'` a
//! string), and `-e @vars.yml`, a YAML (or JSON) file holding a mapping of variables, as
//! Ansible reads it. They have the highest precedence; a later `-e` wins over an earlier one.

use std::path::Path;

use crate::diag::Diagnostic;
use crate::model::Vars;

use super::yaml::{Doc, TopLevel, infer_plain, to_json};

/// A `-e` argument salve cannot read.
#[derive(Debug, thiserror::Error)]
pub enum ExtraVarError {
    #[error("extra variable `{0}` is not `key=value` or `@file`")]
    NotKeyValue(String),
    #[error("extra variable name `{0}` must be letters, digits and `_`")]
    BadName(String),
    /// The file of `-e @file` is unreadable or not a mapping; the diagnostic has its location.
    #[error("{0}")]
    File(Box<Diagnostic>),
}

impl ExtraVarError {
    /// The problem as a diagnostic: a file's own (with its line and column), else one about
    /// the command line.
    pub fn into_diagnostic(self) -> Diagnostic {
        match self {
            ExtraVarError::File(d) => *d,
            other => Diagnostic::in_file(Path::new("command line"), other.to_string()),
        }
    }
}

/// Parse `key=value` and `@file` arguments; the error names the offending argument.
pub fn parse(args: &[String]) -> Result<Vars, ExtraVarError> {
    let mut vars = Vars::new();
    for arg in args {
        if let Some(file) = arg.strip_prefix('@') {
            vars.extend(file_vars(Path::new(file))?);
            continue;
        }
        let Some((key, value)) = arg.split_once('=') else {
            return Err(ExtraVarError::NotKeyValue(arg.clone()));
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ExtraVarError::BadName(key.to_string()));
        }
        vars.insert(key.to_string(), scalar(value));
    }
    Ok(vars)
}

/// The variables of `-e @file`: a mapping at the top level, keys that are variable names.
fn file_vars(path: &Path) -> Result<Vars, ExtraVarError> {
    let doc = Doc::read(path, TopLevel::Mapping).map_err(|d| ExtraVarError::File(Box::new(d)))?;
    let mut vars = Vars::new();
    if let Some(map) = doc.root.as_mapping() {
        for (k, v) in map.iter() {
            let key = k.as_str();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                let d = Diagnostic::at(
                    doc.key_loc(k),
                    key,
                    format!("extra variable name `{key}` must be letters, digits and `_`"),
                );
                return Err(ExtraVarError::File(Box::new(d)));
            }
            vars.insert(key.to_string(), to_json(v));
        }
    }
    Ok(vars)
}

fn scalar(value: &str) -> serde_json::Value {
    let quoted = |q: char| value.len() >= 2 && value.starts_with(q) && value.ends_with(q);
    if quoted('"') || quoted('\'') {
        serde_json::Value::String(value[1..value.len() - 1].to_string())
    } else {
        infer_plain(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_typed_like_yaml() {
        let args: Vec<String> = ["a=1", "b=false", "c=hello world", "d='007'", "e=", "f=x=y"]
            .map(String::from)
            .into();
        let v = parse(&args).unwrap();
        assert_eq!(
            serde_json::Value::Object(v),
            json!({"a": 1, "b": false, "c": "hello world", "d": "007", "e": null, "f": "x=y"})
        );
        assert!(
            parse(&["novalue".into()])
                .unwrap_err()
                .to_string()
                .contains("key=value")
        );
        assert!(parse(&["a b=1".into()]).is_err());
    }

    #[test]
    fn at_file_reads_a_mapping_later_arguments_win() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vars.yml");
        std::fs::write(&file, "kb: KB5049233\nservers: [ex01, ex02]\nreboot: yes\n").unwrap();
        let at = format!("@{}", file.display());
        let v = parse(&[at.clone(), "reboot=false".into()]).unwrap();
        assert_eq!(
            serde_json::Value::Object(v),
            json!({"kb": "KB5049233", "servers": ["ex01", "ex02"], "reboot": false})
        );
        std::fs::write(&file, "kb: [unclosed\n").unwrap();
        let d = parse(&[at]).unwrap_err().into_diagnostic();
        assert_eq!(d.file, file);
        assert!(d.location.is_some(), "{d:?}");
        let missing = parse(&["@/nonexistent/vars.yml".into()])
            .unwrap_err()
            .to_string();
        assert!(missing.contains("cannot read"), "{missing}");
    }
}
