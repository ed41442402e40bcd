//! Extra variables from the command line (`-e key=value`): the value is read as a YAML scalar
//! with the same typing as in files (`-e reboot=false` is a boolean, `-e 'name="007"'` a
//! string). They have the highest precedence.

use crate::model::Vars;

use super::yaml::infer_plain;

/// A `-e` argument salve cannot read.
#[derive(Debug, thiserror::Error)]
pub enum ExtraVarError {
    #[error("extra variable `{0}` is not `key=value`")]
    NotKeyValue(String),
    #[error("extra variable name `{0}` must be letters, digits and `_`")]
    BadName(String),
}

/// Parse `key=value` arguments; the error names the offending argument.
pub fn parse(args: &[String]) -> Result<Vars, ExtraVarError> {
    let mut vars = Vars::new();
    for arg in args {
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
}
