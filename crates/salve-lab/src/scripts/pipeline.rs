//! How Windows PowerShell hands a function's list to its caller: the rule behind arrays nested
//! by accident, modelled so the simulations of the shipped scripts give what the real text
//! would give.
//!
//! The rules (about_Pipelines, about_Operators "Comma operator", about_Arrays "array
//! subexpression operator", about_Preference_Variables `$OFS`):
//! - A function's output is written to the pipeline item by item: `$list` or `return $list`
//!   emits each element ([`Emit::Items`]). The unary comma, `return , $list`, wraps the list
//!   in a one-element array, so the pipeline carries the whole list as **one** object
//!   ([`Emit::OneObject`]).
//! - `@( f )` collects every object `f` wrote into a new array: the list itself for items, a
//!   one-element array holding the list for one object (`ConvertTo-Json` writes `[[…]]`).
//! - `f | Where-Object { … }` and `foreach ($x in @(f))` see one `$_`/`$x` per object: each
//!   element, or the whole list once.
//! - `-contains` compares each element of its left side with the right: a list element is
//!   equal to no string.
//! - Casting a list to `[string]` (or putting it in a double-quoted string) joins its elements
//!   with `$OFS`, a space by default; member access on a list (`$list.Status`) gives the
//!   member of every element.
//!
//! Each simulation names, per function of its script, which [`Emit`] the shipped text uses;
//! a test in `tests/it/shipped_answers.rs` checks the shipped text against those names.

use serde_json::Value;

/// How a shipped script's function gives back a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// `$list` / `return $list`: each element is its own pipeline object.
    Items,
    /// `return , $list`: the list is one pipeline object.
    OneObject,
}

/// The pipeline objects a function writes for `list`: one per element, or the whole list once.
pub fn objects<T>(list: Vec<T>, emit: Emit) -> Vec<Vec<T>> {
    match emit {
        Emit::Items => list.into_iter().map(|x| vec![x]).collect(),
        Emit::OneObject => vec![list],
    }
}

/// `@( f )` for a function that wrote `list` the `emit` way, as `ConvertTo-Json` writes it.
pub fn array_subexpression(list: Vec<Value>, emit: Emit) -> Value {
    match emit {
        Emit::Items => Value::Array(list),
        Emit::OneObject => Value::Array(vec![Value::Array(list)]),
    }
}

/// `[string] $x` / `"$x"` of one pipeline object: the element itself, or a list's elements
/// joined by `$OFS` (a space).
pub fn as_string(object: &[String]) -> String {
    object.join(" ")
}

/// `@( f ) -contains $name` for a function that wrote `list` the `emit` way: `-contains`
/// compares each collected object with `$name`, and a list is equal to no string.
pub fn contains(list: &[String], emit: Emit, name: &str) -> bool {
    match emit {
        Emit::Items => list.iter().any(|x| x == name),
        Emit::OneObject => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_wrapped_list_is_nested_by_the_array_subexpression() {
        let list = vec![json!("a"), json!("b")];
        assert_eq!(
            array_subexpression(list.clone(), Emit::Items),
            json!(["a", "b"])
        );
        assert_eq!(
            array_subexpression(list, Emit::OneObject),
            json!([["a", "b"]])
        );
        assert_eq!(array_subexpression(vec![], Emit::OneObject), json!([[]]));
    }

    #[test]
    fn a_wrapped_list_reaches_the_next_stage_once_and_casts_to_one_string() {
        let objs = objects(
            vec!["Mounted".to_string(), "Healthy".to_string()],
            Emit::OneObject,
        );
        assert_eq!(objs.len(), 1);
        assert_eq!(as_string(&objs[0]), "Mounted Healthy");
        let objs = objects(
            vec!["Mounted".to_string(), "Healthy".to_string()],
            Emit::Items,
        );
        assert_eq!(objs.len(), 2);
        assert_eq!(as_string(&objs[0]), "Mounted");
        let list = ["a".to_string()];
        assert!(contains(&list, Emit::Items, "a"));
        assert!(!contains(&list, Emit::OneObject, "a"));
    }
}
