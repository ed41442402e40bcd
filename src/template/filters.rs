//! Ansible's filters and tests, for templates written for Ansible (the list is
//! [`ANSIBLE_FILTERS`] and [`ANSIBLE_TESTS`]; each behaves as Ansible's documentation says,
//! and the tests below check the documented results). minijinja's own built-ins cover the
//! rest of Jinja2 (`int`, `float`, `unique`, `default`, `join`, `map`, `select`, ...).
//!
//! Dictionaries keep their keys sorted (salve's values are JSON with ordered keys), so
//! `to_json` and `to_yaml` write keys in sorted order where Ansible keeps insertion order.
//! Regular expressions are Rust's `regex` syntax, which agrees with Python's `re` except that
//! look-around and backreferences are refused (with an error naming the pattern).
//! Replacement strings take Python's `\1` and `\g<name>`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use base64::Engine;
use minijinja::value::{Kwargs, Rest};
use minijinja::{Environment, Error, ErrorKind, Value as JValue};
use serde_json::{Map, Value};

/// The Ansible filters added to the template language.
pub const ANSIBLE_FILTERS: &[&str] = &[
    "bool",
    "to_json",
    "to_nice_json",
    "from_json",
    "to_yaml",
    "to_nice_yaml",
    "from_yaml",
    "dict2items",
    "items2dict",
    "combine",
    "regex_search",
    "regex_replace",
    "regex_findall",
    "ternary",
    "mandatory",
    "flatten",
    "union",
    "intersect",
    "difference",
    "symmetric_difference",
    "zip",
    "subelements",
    "b64encode",
    "b64decode",
    "hash",
    "checksum",
];

/// The Ansible tests added (minijinja has `defined`, `undefined` and `none`).
pub const ANSIBLE_TESTS: &[&str] = &["match", "search", "regex", "version", "subset", "superset"];

/// Add Ansible's filters and tests to an environment.
pub fn install(env: &mut Environment<'static>) {
    env.add_filter("bool", to_bool);
    env.add_filter("to_json", to_json);
    env.add_filter("to_nice_json", to_nice_json);
    env.add_filter("from_json", from_json);
    env.add_filter("to_yaml", to_yaml);
    env.add_filter("to_nice_yaml", to_yaml);
    env.add_filter("from_yaml", from_yaml);
    env.add_filter("dict2items", dict2items);
    env.add_filter("items2dict", items2dict);
    env.add_filter("combine", combine);
    env.add_filter("regex_search", regex_search);
    env.add_filter("regex_replace", regex_replace);
    env.add_filter("regex_findall", regex_findall);
    env.add_filter("ternary", ternary);
    env.add_filter("mandatory", mandatory);
    env.add_filter("flatten", flatten);
    env.add_filter("union", union);
    env.add_filter("intersect", intersect);
    env.add_filter("difference", difference);
    env.add_filter("symmetric_difference", symmetric_difference);
    env.add_filter("zip", zip);
    env.add_filter("subelements", subelements);
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("hash", hash);
    env.add_filter("checksum", |v: String| hash(v, Some("sha1".into())));
    env.add_test("match", |v: String, p: String, kw: Kwargs| {
        regex_test(&v, &p, kw, true)
    });
    env.add_test("search", |v: String, p: String, kw: Kwargs| {
        regex_test(&v, &p, kw, false)
    });
    env.add_test("regex", regex_named_test);
    env.add_test("version", version_test);
    env.add_test("subset", |a: JValue, b: JValue| subset(&a, &b));
    env.add_test("superset", |a: JValue, b: JValue| subset(&b, &a));
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn json(v: &JValue) -> Result<Value, Error> {
    serde_json::to_value(v).map_err(|e| bad(e.to_string()))
}

fn back(v: Value) -> JValue {
    JValue::from(minijinja::value::Serde(&v))
}

fn list(v: &JValue, what: &str) -> Result<Vec<Value>, Error> {
    match json(v)? {
        Value::Array(items) => Ok(items),
        other => Err(bad(format!("{what} expects a list, got {other}"))),
    }
}

fn dict(v: &JValue, what: &str) -> Result<Map<String, Value>, Error> {
    match json(v)? {
        Value::Object(m) => Ok(m),
        other => Err(bad(format!("{what} expects a dictionary, got {other}"))),
    }
}

/// `bool`: Ansible's truthy spellings (`yes`, `on`, `1`, `true`) for strings.
fn to_bool(v: JValue) -> bool {
    match v.as_str() {
        Some(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "yes" | "true" | "1" | "on" | "y" | "t"
        ),
        None => v.is_true(),
    }
}

fn to_json(v: JValue) -> Result<String, Error> {
    serde_json::to_string(&json(&v)?).map_err(|e| bad(e.to_string()))
}

/// `to_nice_json`: indented by 4 with sorted keys, as Ansible's default.
fn to_nice_json(v: JValue, kw: Kwargs) -> Result<String, Error> {
    let indent: usize = kw.get::<Option<usize>>("indent")?.unwrap_or(4);
    kw.assert_all_used()?;
    let sorted = sort_keys(json(&v)?);
    let pad = vec![b' '; indent];
    let formatter = serde_json::ser::PrettyFormatter::with_indent(&pad);
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(&sorted, &mut ser).map_err(|e| bad(e.to_string()))?;
    String::from_utf8(out).map_err(|e| bad(e.to_string()))
}

fn sort_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<String, Value> =
                m.into_iter().map(|(k, v)| (k, sort_keys(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

fn from_json(s: String) -> Result<JValue, Error> {
    let v: Value = serde_json::from_str(&s).map_err(|e| bad(format!("from_json: {e}")))?;
    Ok(back(v))
}

/// `to_yaml` / `to_nice_yaml`: block-style YAML indented by 2, as a string (`indent=2` may be
/// written; another indent is refused rather than ignored).
fn to_yaml(v: JValue, kw: Kwargs) -> Result<String, Error> {
    if let Some(indent) = kw.get::<Option<usize>>("indent")?
        && indent != 2
    {
        return Err(bad(format!(
            "to_yaml: salve writes YAML indented by 2, not {indent}"
        )));
    }
    kw.assert_all_used()?;
    let yaml = json_to_yaml(&json(&v)?);
    let mut out = String::new();
    yaml_rust2::YamlEmitter::new(&mut out)
        .dump(&yaml)
        .map_err(|e| bad(format!("to_yaml: {e}")))?;
    // The emitter starts every document with `---`; Ansible's output has none.
    let body = out.strip_prefix("---").unwrap_or(&out);
    let body = body.strip_prefix('\n').unwrap_or(body.trim_start());
    Ok(format!("{body}\n"))
}

fn json_to_yaml(v: &Value) -> yaml_rust2::Yaml {
    use yaml_rust2::Yaml;
    match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(items) => Yaml::Array(items.iter().map(json_to_yaml).collect()),
        Value::Object(m) => Yaml::Hash(
            m.iter()
                .map(|(k, v)| (Yaml::String(k.clone()), json_to_yaml(v)))
                .collect(),
        ),
    }
}

fn from_yaml(s: String) -> Result<JValue, Error> {
    let docs =
        yaml_rust2::YamlLoader::load_from_str(&s).map_err(|e| bad(format!("from_yaml: {e}")))?;
    let first = docs.into_iter().next().unwrap_or(yaml_rust2::Yaml::Null);
    Ok(back(yaml_to_json(first)?))
}

fn yaml_to_json(y: yaml_rust2::Yaml) -> Result<Value, Error> {
    use yaml_rust2::Yaml;
    Ok(match y {
        Yaml::Null | Yaml::BadValue => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::from(i),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::String(r), Value::Number),
        Yaml::String(s) => Value::String(s),
        Yaml::Array(items) => Value::Array(
            items
                .into_iter()
                .map(yaml_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s,
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => {
                        return Err(bad(format!(
                            "from_yaml: a key must be a scalar, got {other:?}"
                        )));
                    }
                };
                m.insert(key, yaml_to_json(v)?);
            }
            Value::Object(m)
        }
        Yaml::Alias(_) => return Err(bad("from_yaml: aliases are not supported")),
    })
}

/// `dict2items`: `{a: 1}` → `[{key: a, value: 1}]` (`key_name`, `value_name` rename them).
fn dict2items(v: JValue, kw: Kwargs) -> Result<JValue, Error> {
    let key: String = kw
        .get::<Option<String>>("key_name")?
        .unwrap_or_else(|| "key".into());
    let value: String = kw
        .get::<Option<String>>("value_name")?
        .unwrap_or_else(|| "value".into());
    kw.assert_all_used()?;
    let items: Vec<Value> = dict(&v, "dict2items")?
        .into_iter()
        .map(|(k, v)| {
            let mut m = Map::new();
            m.insert(key.clone(), Value::String(k));
            m.insert(value.clone(), v);
            Value::Object(m)
        })
        .collect();
    Ok(back(Value::Array(items)))
}

/// `items2dict`: the reverse of `dict2items`.
fn items2dict(v: JValue, kw: Kwargs) -> Result<JValue, Error> {
    let key: String = kw
        .get::<Option<String>>("key_name")?
        .unwrap_or_else(|| "key".into());
    let value: String = kw
        .get::<Option<String>>("value_name")?
        .unwrap_or_else(|| "value".into());
    kw.assert_all_used()?;
    let mut out = Map::new();
    for item in list(&v, "items2dict")? {
        let (Some(k), Some(val)) = (item.get(&key), item.get(&value)) else {
            return Err(bad(format!(
                "items2dict: every item needs `{key}` and `{value}`, got {item}"
            )));
        };
        let k = match k {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.insert(k, val.clone());
    }
    Ok(back(Value::Object(out)))
}

/// `combine`: later dictionaries win; `recursive=true` merges nested dictionaries.
fn combine(v: JValue, others: Rest<JValue>, kw: Kwargs) -> Result<JValue, Error> {
    let recursive = kw.get::<Option<bool>>("recursive")?.unwrap_or(false);
    let list_merge: Option<String> = kw.get("list_merge")?;
    kw.assert_all_used()?;
    let append = match list_merge.as_deref() {
        None | Some("replace") => false,
        Some("append") => true,
        Some(other) => {
            return Err(bad(format!(
                "combine: list_merge `{other}` is not supported (replace, append)"
            )));
        }
    };
    let mut out = dict(&v, "combine")?;
    for other in others.iter() {
        // `combine` also takes a list of dictionaries.
        let dicts = match json(other)? {
            Value::Array(items) => items,
            single => vec![single],
        };
        for d in dicts {
            let Value::Object(d) = d else {
                return Err(bad(format!("combine expects dictionaries, got {d}")));
            };
            merge(&mut out, d, recursive, append);
        }
    }
    Ok(back(Value::Object(out)))
}

fn merge(into: &mut Map<String, Value>, from: Map<String, Value>, recursive: bool, append: bool) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Object(a)), Value::Object(b)) if recursive => {
                merge(a, b, recursive, append)
            }
            (Some(Value::Array(a)), Value::Array(b)) if append => a.extend(b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// A pattern with Ansible's `ignorecase` and `multiline` flags.
fn pattern(p: &str, kw: &Kwargs) -> Result<regex::Regex, Error> {
    let ignorecase = kw.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let multiline = kw.get::<Option<bool>>("multiline")?.unwrap_or(false);
    regex::RegexBuilder::new(p)
        .case_insensitive(ignorecase)
        .multi_line(multiline)
        .build()
        .map_err(|e| bad(format!("pattern `{p}`: {e}")))
}

/// `regex_search`: the first match, or with group arguments (`'\\1'`, `'\\g<name>'`) the list
/// of those groups; none when nothing matches.
fn regex_search(v: String, p: String, groups: Rest<String>, kw: Kwargs) -> Result<JValue, Error> {
    let re = pattern(&p, &kw)?;
    kw.assert_all_used()?;
    let Some(caps) = re.captures(&v) else {
        return Ok(JValue::from(()));
    };
    if groups.is_empty() {
        return Ok(JValue::from(caps.get(0).map_or("", |m| m.as_str())));
    }
    let mut out = Vec::new();
    for g in groups.iter() {
        let m = if let Some(n) = g.strip_prefix('\\').and_then(|n| n.parse::<usize>().ok()) {
            caps.get(n)
        } else if let Some(name) = g.strip_prefix("\\g<").and_then(|n| n.strip_suffix('>')) {
            caps.name(name)
        } else {
            return Err(bad(format!("regex_search: unknown group reference `{g}`")));
        };
        out.push(m.map_or(Value::Null, |m| Value::String(m.as_str().into())));
    }
    Ok(back(Value::Array(out)))
}

/// `regex_replace`: every match replaced; `\1` and `\g<name>` refer to groups.
fn regex_replace(
    v: String,
    p: String,
    replacement: Option<String>,
    kw: Kwargs,
) -> Result<String, Error> {
    let re = pattern(&p, &kw)?;
    let count: Option<usize> = kw.get("count")?;
    kw.assert_all_used()?;
    let rep = python_replacement(&replacement.unwrap_or_default());
    Ok(re
        .replacen(&v, count.unwrap_or(0), rep.as_str())
        .into_owned())
}

/// Python's `\1` / `\g<name>` replacement syntax as the regex crate's `${1}` / `${name}`
/// (a literal `$` escaped).
fn python_replacement(rep: &str) -> String {
    let mut out = String::new();
    let mut chars = rep.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.peek() {
                Some(d) if d.is_ascii_digit() => {
                    let mut n = String::new();
                    while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                        n.push(*d);
                        chars.next();
                    }
                    out.push_str(&format!("${{{n}}}"));
                }
                Some('g') => {
                    chars.next();
                    let name: String = chars.by_ref().skip(1).take_while(|c| *c != '>').collect();
                    out.push_str(&format!("${{{name}}}"));
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// `regex_findall`: every match; with groups, the groups (one group: its text; several: a list).
fn regex_findall(v: String, p: String, kw: Kwargs) -> Result<JValue, Error> {
    let re = pattern(&p, &kw)?;
    kw.assert_all_used()?;
    let groups = re.captures_len() - 1;
    let found: Vec<Value> = re
        .captures_iter(&v)
        .map(|caps| {
            let text = |i| Value::String(caps.get(i).map_or("", |m| m.as_str()).to_string());
            match groups {
                0 => text(0),
                1 => text(1),
                n => Value::Array((1..=n).map(text).collect()),
            }
        })
        .collect();
    Ok(back(Value::Array(found)))
}

/// `ternary(a, b, c)`: `a` when true, `b` when false, `c` (if given) when none.
fn ternary(v: JValue, yes: JValue, no: JValue, none: Option<JValue>) -> JValue {
    match none {
        Some(n) if v.is_none() => n,
        _ if v.is_true() => yes,
        _ => no,
    }
}

/// `mandatory`: an error when the value is undefined.
fn mandatory(v: JValue, msg: Option<String>) -> Result<JValue, Error> {
    if v.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            msg.unwrap_or_else(|| "Mandatory variable not defined.".into()),
        ));
    }
    Ok(v)
}

/// `flatten(levels)`: nested lists made flat (all levels, or `levels` of them); nulls dropped
/// unless `skip_nulls=false`.
fn flatten(v: JValue, levels: Option<usize>, kw: Kwargs) -> Result<JValue, Error> {
    let skip_nulls = kw.get::<Option<bool>>("skip_nulls")?.unwrap_or(true);
    let levels = match kw.get::<Option<usize>>("levels")? {
        Some(l) => Some(l),
        None => levels,
    };
    kw.assert_all_used()?;
    fn go(items: Vec<Value>, levels: Option<usize>, skip_nulls: bool, out: &mut Vec<Value>) {
        for item in items {
            match item {
                Value::Array(inner) if levels != Some(0) => {
                    go(inner, levels.map(|l| l - 1), skip_nulls, out)
                }
                Value::Null if skip_nulls => {}
                other => out.push(other),
            }
        }
    }
    let mut out = Vec::new();
    go(list(&v, "flatten")?, levels, skip_nulls, &mut out);
    Ok(back(Value::Array(out)))
}

fn dedup(items: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// `union`: the items of both, each once, in order.
fn union(a: JValue, b: JValue) -> Result<JValue, Error> {
    let (a, b) = (list(&a, "union")?, list(&b, "union")?);
    Ok(back(Value::Array(dedup(a.into_iter().chain(b)))))
}

/// `intersect`: the items in both, each once, in the first list's order.
fn intersect(a: JValue, b: JValue) -> Result<JValue, Error> {
    let (a, b) = (list(&a, "intersect")?, list(&b, "intersect")?);
    Ok(back(Value::Array(dedup(
        a.into_iter().filter(|i| b.contains(i)),
    ))))
}

/// `difference`: the items of the first list not in the second, each once.
fn difference(a: JValue, b: JValue) -> Result<JValue, Error> {
    let (a, b) = (list(&a, "difference")?, list(&b, "difference")?);
    Ok(back(Value::Array(dedup(
        a.into_iter().filter(|i| !b.contains(i)),
    ))))
}

/// `symmetric_difference`: the items in exactly one of the lists.
fn symmetric_difference(a: JValue, b: JValue) -> Result<JValue, Error> {
    let (a, b) = (
        list(&a, "symmetric_difference")?,
        list(&b, "symmetric_difference")?,
    );
    let only_a = a.iter().filter(|i| !b.contains(i)).cloned();
    let only_b = b.iter().filter(|i| !a.contains(i)).cloned();
    Ok(back(Value::Array(dedup(only_a.chain(only_b)))))
}

/// `zip`: lists paired item by item, as long as the shortest.
fn zip(a: JValue, others: Rest<JValue>) -> Result<JValue, Error> {
    let mut lists = vec![list(&a, "zip")?];
    for o in others.iter() {
        lists.push(list(o, "zip")?);
    }
    let len = lists.iter().map(Vec::len).min().unwrap_or(0);
    let rows = (0..len)
        .map(|i| Value::Array(lists.iter().map(|l| l[i].clone()).collect()))
        .collect();
    Ok(back(Value::Array(rows)))
}

/// `subelements('key')`: each item paired with each element of its `key` list.
fn subelements(v: JValue, key: String, kw: Kwargs) -> Result<JValue, Error> {
    let skip_missing = kw.get::<Option<bool>>("skip_missing")?.unwrap_or(false);
    kw.assert_all_used()?;
    let mut out = Vec::new();
    for item in list(&v, "subelements")? {
        match item.get(&key) {
            Some(Value::Array(subs)) => out.extend(
                subs.iter()
                    .map(|s| Value::Array(vec![item.clone(), s.clone()])),
            ),
            None if skip_missing => {}
            None => return Err(bad(format!("subelements: an item has no `{key}`: {item}"))),
            Some(other) => {
                return Err(bad(format!(
                    "subelements: `{key}` must be a list, got {other}"
                )));
            }
        }
    }
    Ok(back(Value::Array(out)))
}

fn b64encode(s: String) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn b64decode(s: String) -> Result<String, Error> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| bad(format!("b64decode: {e}")))?;
    String::from_utf8(bytes).map_err(|e| bad(format!("b64decode: not UTF-8 text: {e}")))
}

/// `hash('sha1')` (the default), `md5`, `sha256`, `sha512`: the hex digest of the text.
fn hash(s: String, algorithm: Option<String>) -> Result<String, Error> {
    use sha2::Digest;
    let bytes = s.as_bytes();
    Ok(match algorithm.as_deref().unwrap_or("sha1") {
        "sha1" => hex::encode(sha1::Sha1::digest(bytes)),
        "md5" => hex::encode(md5::Md5::digest(bytes)),
        "sha224" => hex::encode(sha2::Sha224::digest(bytes)),
        "sha256" => hex::encode(sha2::Sha256::digest(bytes)),
        "sha384" => hex::encode(sha2::Sha384::digest(bytes)),
        "sha512" => hex::encode(sha2::Sha512::digest(bytes)),
        other => {
            return Err(bad(format!(
                "hash: `{other}` is not supported (sha1, md5, sha224, sha256, sha384, sha512)"
            )));
        }
    })
}

/// `match` (anchored at the start, as Python's `re.match`) and `search` (anywhere).
fn regex_test(v: &str, p: &str, kw: Kwargs, anchored: bool) -> Result<bool, Error> {
    let p = if anchored {
        format!(r"\A(?:{p})")
    } else {
        p.to_string()
    };
    let re = pattern(&p, &kw)?;
    kw.assert_all_used()?;
    Ok(re.is_match(v))
}

/// `regex`: `search` by default, `match` with `match_type='match'`.
fn regex_named_test(v: String, p: String, kw: Kwargs) -> Result<bool, Error> {
    let kind: Option<String> = kw.get("match_type")?;
    let anchored = match kind.as_deref() {
        None | Some("search") => false,
        Some("match") => true,
        Some(other) => return Err(bad(format!("regex: match_type `{other}` is not supported"))),
    };
    regex_test(&v, &p, kw, anchored)
}

/// `version(other, operator='eq')`: Ansible's loose version comparison, so `15.2.1544.14` >
/// `15.2.1258.39` and `KB5049233` < `KB5050000` compare as numbers part by part.
fn version_test(v: JValue, other: JValue, op: Option<String>, kw: Kwargs) -> Result<bool, Error> {
    let op = match kw.get::<Option<String>>("operator")? {
        Some(o) => Some(o),
        None => op,
    };
    let kind: Option<String> = kw.get("version_type")?;
    let strict: Option<bool> = kw.get("strict")?;
    kw.assert_all_used()?;
    if !matches!(kind.as_deref(), None | Some("loose")) || strict == Some(true) {
        return Err(bad(
            "version: salve compares loose versions only (version_type='loose')",
        ));
    }
    let text = |x: &JValue| x.as_str().map_or_else(|| x.to_string(), str::to_string);
    let ord = loose_cmp(&text(&v), &text(&other));
    Ok(match op.as_deref().unwrap_or("eq") {
        "<" | "lt" => ord == Ordering::Less,
        "<=" | "le" => ord != Ordering::Greater,
        ">" | "gt" => ord == Ordering::Greater,
        ">=" | "ge" => ord != Ordering::Less,
        "==" | "=" | "eq" => ord == Ordering::Equal,
        "!=" | "<>" | "ne" => ord != Ordering::Equal,
        other => return Err(bad(format!("version: unknown operator `{other}`"))),
    })
}

/// One part of a loose version: a number or a run of other characters.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    // Numbers sort before words, so `1.0` < `1.0a` holds as in Python's LooseVersion.
    Num(u64),
    Word(String),
}

/// Python's `LooseVersion` split: runs of digits (as numbers) and of letters; dots dropped.
fn loose_parts(s: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_digit() {
            let mut n = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                n.push(*d);
                chars.next();
            }
            parts.push(Part::Num(n.parse().unwrap_or(u64::MAX)));
        } else if c == '.' {
            chars.next();
        } else {
            let mut w = String::new();
            while let Some(d) = chars.peek().filter(|d| !d.is_ascii_digit() && **d != '.') {
                w.push(*d);
                chars.next();
            }
            parts.push(Part::Word(w));
        }
    }
    parts
}

fn loose_cmp(a: &str, b: &str) -> Ordering {
    loose_parts(a).cmp(&loose_parts(b))
}

/// Is every item of `a` in `b`?
fn subset(a: &JValue, b: &JValue) -> Result<bool, Error> {
    let (a, b) = (list(a, "subset")?, list(b, "subset")?);
    Ok(a.iter().all(|i| b.contains(i)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{eval, eval_bool, render_str};

    fn ev(src: &str) -> serde_json::Value {
        eval(src, &json!({"d": {"a": 1, "b": 2}})).unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    // Each expected value is the result Ansible's documentation gives for the example
    // (docs.ansible.com, "Using filters to manipulate data" and "Tests").
    #[test]
    fn dictionaries() {
        assert_eq!(
            ev("d | dict2items"),
            json!([{"key": "a", "value": 1}, {"key": "b", "value": 2}])
        );
        assert_eq!(
            ev("{'Environment': 'dev'} | dict2items(key_name='k', value_name='v')"),
            json!([{"k": "Environment", "v": "dev"}])
        );
        assert_eq!(
            ev("[{'key': 'a', 'value': 1}] | items2dict"),
            json!({"a": 1})
        );
        assert_eq!(
            ev("{'a':1, 'b':2} | combine({'b':3})"),
            json!({"a": 1, "b": 3})
        );
        assert_eq!(
            ev(
                "{'a':{'foo':1, 'bar':2}, 'b':2} | combine({'a':{'bar':3, 'baz':4}}, recursive=true)"
            ),
            json!({"a": {"foo": 1, "bar": 3, "baz": 4}, "b": 2})
        );
        assert_eq!(
            ev("{'a':{'foo':1}} | combine({'a':{'baz':4}})"),
            json!({"a": {"baz": 4}})
        );
    }

    #[test]
    fn regular_expressions() {
        assert_eq!(
            ev("'server1/database42' | regex_search('database[0-9]+')"),
            json!("database42")
        );
        assert_eq!(ev("'foo' | regex_search('bar')"), json!(null));
        assert_eq!(
            ev(
                "'server1/database42' | regex_search('server([0-9]+)/database([0-9]+)', '\\\\1', '\\\\2')"
            ),
            json!(["1", "42"])
        );
        assert_eq!(
            ev("'ansible' | regex_replace('^a.*i(.*)$', 'a\\\\1')"),
            json!("able")
        );
        assert_eq!(
            ev(
                "'localhost:80' | regex_replace('^(?P<host>.+):(?P<port>\\\\d+)$', '\\\\g<host>, \\\\g<port>')"
            ),
            json!("localhost, 80")
        );
        assert_eq!(
            ev(
                "'Some DNS servers are 8.8.8.8 and 8.8.4.4' | regex_findall('\\\\b(?:[0-9]{1,3}\\\\.){3}[0-9]{1,3}\\\\b')"
            ),
            json!(["8.8.8.8", "8.8.4.4"])
        );
        assert!(eval("'x' | regex_search('(?<=a)x')", &json!({})).is_err());
    }

    #[test]
    fn formats() {
        // Ansible keeps a dictionary's order; salve's values keep keys sorted.
        assert_eq!(
            ev("{'b': 1, 'a': [1, 2]} | to_json"),
            json!("{\"a\":[1,2],\"b\":1}")
        );
        assert_eq!(
            ev("{'b': 1, 'a': 2} | to_nice_json"),
            json!("{\n    \"a\": 2,\n    \"b\": 1\n}")
        );
        assert_eq!(
            ev("'{\"a\": [1, true]}' | from_json"),
            json!({"a": [1, true]})
        );
        assert_eq!(ev("{'a': [1, 'x']} | to_yaml"), json!("a:\n  - 1\n  - x\n"));
        assert_eq!(ev("{'a': 1} | to_nice_yaml(indent=2)"), json!("a: 1\n"));
        assert!(eval("{'a': 1} | to_nice_yaml(indent=4)", &json!({})).is_err());
        assert_eq!(
            ev("'a: [1, x]\\nb: yes' | from_yaml"),
            json!({"a": [1, "x"], "b": "yes"})
        );
        assert_eq!(ev("'hello' | b64encode"), json!("aGVsbG8="));
        assert_eq!(ev("'aGVsbG8=' | b64decode"), json!("hello"));
        assert_eq!(
            ev("'test1' | hash('sha1')"),
            json!("b444ac06613fc8d63795be9ad0beaf55011936ac")
        );
        assert_eq!(
            ev("'test1' | hash('md5')"),
            json!("5a105e8b9d40e1329780d62ea2265d8a")
        );
        assert_eq!(
            ev("'test1' | checksum"),
            json!("b444ac06613fc8d63795be9ad0beaf55011936ac")
        );
    }

    #[test]
    fn values_and_lists() {
        assert_eq!(ev("'yes' | bool"), json!(true));
        assert_eq!(ev("'0' | bool"), json!(false));
        assert_eq!(ev("'42' | int + 1"), json!(43));
        assert_eq!(ev("'1.5' | float"), json!(1.5));
        assert_eq!(ev("(1 == 1) | ternary('yes', 'no')"), json!("yes"));
        assert_eq!(ev("none | ternary('yes', 'no', 'null')"), json!("null"));
        assert_eq!(
            ev("[1, [2, [3, [4]]], 5] | flatten"),
            json!([1, 2, 3, 4, 5])
        );
        assert_eq!(
            ev("[1, [2, [3, [4]]], 5] | flatten(levels=1)"),
            json!([1, 2, [3, [4]], 5])
        );
        assert_eq!(
            ev("[1, 2, 5, 1, 3, 4, 10] | unique | list"),
            json!([1, 2, 5, 3, 4, 10])
        );
        assert_eq!(
            ev("[1, 2, 5, 1, 3, 4, 10] | union([1, 2, 3, 4, 5, 11, 99])"),
            json!([1, 2, 5, 3, 4, 10, 11, 99])
        );
        assert_eq!(
            ev("[1, 2, 5, 1, 3, 4, 10] | intersect([1, 2, 3, 4, 5, 11, 99])"),
            json!([1, 2, 5, 3, 4])
        );
        assert_eq!(
            ev("[1, 2, 5, 1, 3, 4, 10] | difference([1, 2, 3, 4, 5, 11, 99])"),
            json!([10])
        );
        assert_eq!(
            ev("[1, 2, 5, 1, 3, 4, 10] | symmetric_difference([1, 2, 3, 4, 5, 11, 99])"),
            json!([10, 11, 99])
        );
        assert_eq!(
            ev("[1, 2, 3, 4, 5, 6] | zip(['a', 'b', 'c', 'd', 'e', 'f'])"),
            json!([[1, "a"], [2, "b"], [3, "c"], [4, "d"], [5, "e"], [6, "f"]])
        );
        assert_eq!(
            ev("[1, 2, 3] | zip(['a', 'b', 'c', 'd', 'e', 'f'])"),
            json!([[1, "a"], [2, "b"], [3, "c"]])
        );
        assert_eq!(
            ev(
                "[{'name': 'alice', 'groups': ['wheel', 'docker']}, {'name': 'bob', 'groups': []}] | subelements('groups')"
            ),
            json!([[{"name": "alice", "groups": ["wheel", "docker"]}, "wheel"], [{"name": "alice", "groups": ["wheel", "docker"]}, "docker"]])
        );
        assert_eq!(ev("d.a | mandatory"), json!(1));
        let err = eval("missing | mandatory", &json!({}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("Mandatory variable not defined."), "{err}");
        let err = eval("missing | mandatory('give -e x')", &json!({}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("give -e x"), "{err}");
    }

    #[test]
    fn tests() {
        let t = |src: &str| {
            eval_bool(
                src,
                &json!({"url": "https://example.com/users/foo/resources/bar", "n": null}),
            )
            .unwrap_or_else(|e| panic!("{src}: {e}"))
        };
        assert!(t("url is match('https://example.com/users/.*/resources')"));
        assert!(!t("url is match('/users/.*/resources')"));
        assert!(t("url is search('users/.*/resources/.*')"));
        assert!(t("url is regex('example\\\\.com/\\\\w+/foo')"));
        assert!(t("'EXAMPLE' is search('example', ignorecase=true)"));
        assert!(t("n is none"));
        assert!(t("missing is undefined"));
        assert!(t("url is defined"));
        assert!(t("'15.2.1544.14' is version('15.2.1258.39', '>')"));
        assert!(t("'15.1.2507.44' is version('15.2.0.0', 'lt')"));
        assert!(t(
            "'15.2.1544.14' is version('15.2.1544.14', operator='eq')"
        ));
        assert!(t("'KB5049233' is version('KB5050000', '<')"));
        assert!(t("'1.0' is version('1.0a', '<')"));
        assert!(t("[1, 2] is subset([1, 2, 3])"));
        assert!(t("[1, 2, 3] is superset([1, 2])"));
        assert!(!t("[1, 4] is subset([1, 2, 3])"));
        assert!(
            eval_bool(
                "'1' is version('2', 'lt', version_type='semver')",
                &json!({})
            )
            .is_err()
        );
        assert_eq!(
            render_str("{{ 'a' if 'x' is search('x') }}", &json!({})).unwrap(),
            "a"
        );
    }
}
