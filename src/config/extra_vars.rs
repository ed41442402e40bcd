//! Extra variables from the command line (`-e key=value`): the value is read as a YAML scalar
//! with the same typing as in files (`-e reboot=false` is a boolean, `-e 'name="007"'` a
//! string). They have the highest precedence.

use crate::model::Vars;

use super::yaml::infer_plain;

/// Parse `key=value` arguments; the error names the offending argument.
pub fn parse(args: &[String]) -> Result<Vars, String> {
    let mut vars = Vars::new();
    for arg in args {
        let Some((key, value)) = arg.split_once('=') else {
            return Err(format!("extra variable `{arg}` is not `key=value`"));
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "extra variable name `{key}` must be letters, digits and `_`"
            ));
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
                .contains("key=value")
        );
        assert!(parse(&["a b=1".into()]).is_err());
    }
}
