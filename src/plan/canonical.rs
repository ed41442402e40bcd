//! Canonical JSON: object keys sorted by their UTF-8 bytes at every depth, arrays kept in order,
//! numbers as serde_json writes them (shortest round-trip form, so a float always prints the
//! same way). The crate's `serde_json` keeps insertion order, so sorting here is what makes the
//! bytes independent of how a value was built.

use serde_json::{Map, Value};

/// `value` with every object's keys sorted.
pub fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect::<Map<String, Value>>(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Compact canonical bytes (the input of digests).
pub fn compact(value: &Value) -> Vec<u8> {
    // Serialising a `Value` to memory cannot fail: every key is a string and there is no I/O.
    serde_json::to_vec(&sorted(value)).unwrap_or_default()
}

/// Indented canonical text with a final newline (the file form: stable and diffable).
pub fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(&sorted(value)).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_at_every_depth() {
        let v = json!({"b": 1, "a": {"z": [ {"y": 1, "x": 2} ], "c": 1.5}});
        assert_eq!(
            String::from_utf8(compact(&v)).unwrap(),
            r#"{"a":{"c":1.5,"z":[{"x":2,"y":1}]},"b":1}"#
        );
    }

    proptest! {
        /// Insertion order never changes the bytes.
        #[test]
        fn insertion_order_does_not_matter(
            entries in proptest::collection::btree_map("[a-z]{1,6}", any::<i64>(), 0..12),
            floats in proptest::collection::vec(-1e9f64..1e9, 0..4),
        ) {
            let mut forward = Map::new();
            for (k, v) in &entries {
                forward.insert(k.clone(), json!(v));
            }
            forward.insert("FLOATS".into(), json!(floats));
            let mut backward = Map::new();
            backward.insert("FLOATS".into(), json!(floats));
            for (k, v) in entries.iter().rev() {
                backward.insert(k.clone(), json!(v));
            }
            let (a, b) = (Value::Object(forward), Value::Object(backward));
            prop_assert_eq!(compact(&a), compact(&b));
            prop_assert_eq!(pretty(&a), pretty(&b));
        }
    }
}
