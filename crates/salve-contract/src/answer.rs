//! Reading a shipped script's answer against its [`contract`](crate::contract) type, with an
//! error that names the script and the field at fault.
//!
//! Both sides use it: salve reads every `##salve-result##` document through [`parse`], and the
//! lab checks each answer its simulations print with [`validate`] (a simulation that breaks the
//! contract is caught in the lab's own tests, not on a customer's server).
//!
//! One rule comes before the types: no field of any answer is a list of lists. Windows
//! PowerShell nests an array by accident when a function ends in `return , $list` and its
//! caller wraps the call in `@( … )` (the unary comma emits the array as one object, and the
//! array subexpression collects that one object into a new array), and `ConvertTo-Json` then
//! writes `[[…]]`. Such an answer is refused as [`AnswerError::NestedList`], naming the field,
//! whatever its type would make of it.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::contract::{
    BootIdAnswer, FactsAnswer, HealthAnswer, IocScanAnswer, JobControlAnswer, JobPollAnswer,
    MaintenanceAnswer, MitigateAnswer, RebootAnswer, ScriptId, UpdateAnswer, VerifyAnswer,
};

/// Why a script's answer does not match its contract.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// A list field holds a list: the script nested an array by accident.
    #[error(
        "{script} answer: field `{field}` is a list inside a list; the script wrapped an \
         array twice (a function ending in `return , $list` called inside `@( … )`), see \
         scripts/README.md"
    )]
    NestedList { script: &'static str, field: String },
    /// A field is missing or has the wrong type.
    #[error("{script} answer: field `{field}` does not match the contract")]
    Mismatch {
        script: &'static str,
        /// Dotted path with list indexes (`services[3].start_type`), `.` for the whole answer.
        field: String,
        #[source]
        source: serde_json::Error,
    },
}

impl AnswerError {
    /// The field at fault, as a dotted path.
    pub fn field(&self) -> &str {
        match self {
            AnswerError::NestedList { field, .. } | AnswerError::Mismatch { field, .. } => field,
        }
    }
}

/// Read script `id`'s answer as `T`.
pub fn parse<T: DeserializeOwned>(id: ScriptId, value: Value) -> Result<T, AnswerError> {
    if let Some(field) = nested_list(&value) {
        return Err(AnswerError::NestedList {
            script: id.as_str(),
            field,
        });
    }
    serde_path_to_error::deserialize(value).map_err(|e| AnswerError::Mismatch {
        script: id.as_str(),
        field: e.path().to_string(),
        source: e.into_inner(),
    })
}

/// Check `value` against script `id`'s answer type.
pub fn validate(id: ScriptId, value: &Value) -> Result<(), AnswerError> {
    let v = value.clone();
    match id {
        ScriptId::ExchangeFacts => parse::<FactsAnswer>(id, v).map(drop),
        ScriptId::ExchangeMitigate => parse::<MitigateAnswer>(id, v).map(drop),
        ScriptId::ExchangeUpdate => parse::<UpdateAnswer>(id, v).map(drop),
        ScriptId::ExchangeMaintenance => parse::<MaintenanceAnswer>(id, v).map(drop),
        ScriptId::Reboot => parse::<RebootAnswer>(id, v).map(drop),
        ScriptId::BootId => parse::<BootIdAnswer>(id, v).map(drop),
        ScriptId::ExchangeVerify => parse::<VerifyAnswer>(id, v).map(drop),
        ScriptId::ExchangeIocScan => parse::<IocScanAnswer>(id, v).map(drop),
        ScriptId::ExchangeHealth => parse::<HealthAnswer>(id, v).map(drop),
        ScriptId::JobControl => parse::<JobControlAnswer>(id, v).map(drop),
        ScriptId::JobPoll => parse::<JobPollAnswer>(id, v).map(drop),
    }
}

/// The path of the first list that holds a list, if any (`.` for the answer itself). The path
/// is only spelled out once one is found: answers are checked on every step.
fn nested_list(value: &Value) -> Option<String> {
    let mut trail = Vec::new();
    if !find_nested_list(value, &mut trail) {
        return None;
    }
    let mut out = String::new();
    for step in trail {
        match step {
            Step::Index(i) => out.push_str(&format!("[{i}]")),
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
        }
    }
    if out.is_empty() {
        out.push('.');
    }
    Some(out)
}

/// One step of the way into an answer.
enum Step<'a> {
    Index(usize),
    Key(&'a str),
}

/// Whether `value` holds a list of lists; `trail` is then the way to the outer list.
fn find_nested_list<'a>(value: &'a Value, trail: &mut Vec<Step<'a>>) -> bool {
    match value {
        Value::Array(items) => {
            if items.iter().any(Value::is_array) {
                return true;
            }
            items.iter().enumerate().any(|(i, v)| {
                trail.push(Step::Index(i));
                let found = find_nested_list(v, trail);
                if !found {
                    trail.pop();
                }
                found
            })
        }
        Value::Object(fields) => fields.iter().any(|(k, v)| {
            trail.push(Step::Key(k));
            let found = find_nested_list(v, trail);
            if !found {
                trail.pop();
            }
            found
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts() -> Value {
        json!({
            "computer_name": "EX01", "family": "Exchange 2019", "build": "15.2.1544.4",
            "installed_kbs": [], "uninstall_entries": [], "update_packages": [], "roles": [],
            "dag": null, "database_copies": [], "component_states": [], "services": [],
            "dotnet_release": 528040, "vcredist_2012": null, "vcredist_2013": null, "ucma": null,
            "url_rewrite": null, "mitigation_rules": [], "pending_reboot": [],
            "free_disk_bytes": 1, "auth_certificate_expiry": null, "cluster_node_state": null,
            "activation_policy": null, "boot_id": "2026-01-01T00:00:00Z"
        })
    }

    #[test]
    fn a_well_formed_answer_is_accepted() {
        validate(ScriptId::ExchangeFacts, &facts()).unwrap();
    }

    #[test]
    fn a_nested_list_is_refused_naming_the_field() {
        let mut v = facts();
        v["pending_reboot"] = json!([[]]);
        let e = validate(ScriptId::ExchangeFacts, &v).unwrap_err();
        assert!(matches!(e, AnswerError::NestedList { .. }), "{e:?}");
        assert_eq!(e.field(), "pending_reboot");
        let msg = e.to_string();
        assert!(
            msg.starts_with("exchange_facts answer: field `pending_reboot`"),
            "{msg}"
        );
        assert!(msg.contains("return , $list"), "{msg}");
    }

    #[test]
    fn a_nested_lists_path_is_spelled_out_at_any_depth() {
        assert_eq!(
            nested_list(&json!({"x": {"y": [1, {"z": [[1]]}]}})).as_deref(),
            Some("x.y[1].z")
        );
        assert_eq!(nested_list(&json!([[1]])).as_deref(), Some("."));
        assert_eq!(nested_list(&json!([{"a": [[]]}])).as_deref(), Some("[0].a"));
        assert_eq!(nested_list(&json!({"x": [1, {"y": []}]})), None);
    }

    #[test]
    fn a_nested_list_of_records_is_refused_too() {
        let v = json!({"changed": true, "success": true, "reason": null,
            "previous_activation_policy": null, "activation_policy": null,
            "component_states": [], "cluster_node_state": null,
            "moved_databases": [[{"database": "DB1", "from": "a", "to": "b"}]],
            "gates": {"no_active_copies": true, "components_as_expected": true,
                      "cluster_node_as_expected": true, "copies_healthy": true}});
        let e = validate(ScriptId::ExchangeMaintenance, &v).unwrap_err();
        assert_eq!(e.field(), "moved_databases");
    }

    #[test]
    fn a_wrong_type_names_the_path_inside_a_list() {
        let mut v = facts();
        v["services"] = json!([{"name": "W3SVC", "display_name": "x", "start_type": 2,
            "status": "Running"}]);
        let e = validate(ScriptId::ExchangeFacts, &v).unwrap_err();
        assert_eq!(e.field(), "services[0].start_type");
        assert!(e.to_string().contains("exchange_facts answer"));
        let v = json!({"boot_id": "x"});
        let e = validate(ScriptId::BootId, &v).unwrap_err();
        assert!(matches!(e, AnswerError::Mismatch { .. }));
        assert!(
            std::error::Error::source(&e)
                .unwrap()
                .to_string()
                .contains("uptime_seconds")
        );
    }
}
