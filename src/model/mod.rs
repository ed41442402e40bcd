//! The validated model: what a playbook and an inventory mean once every file has been read and
//! checked. These types carry no serde attributes and no raw YAML; the [`crate::config`] loaders
//! build them and report every problem with its location, and the runner consumes them.

pub mod connection;
pub mod host_var;
pub mod inventory;
pub mod layered_vars;
pub mod package_server;
pub mod pattern;
pub mod playbook;
pub mod run_as;
pub mod settings;
pub mod share_account;

pub use connection::{ConnectionKind, ConnectionSpec};
pub use host_var::SettingError;
pub use inventory::{Group, Host, Inventory, SelectError};
pub use layered_vars::{LayeredVars, Lookup};
pub use pattern::{HostPattern, PatternError};
pub use playbook::{
    BatchSize, Become, Block, Expr, Include, LoopControl, LoopSpec, ModuleCall, Play, Playbook,
    Rolling, Step, Task, TaskSection,
};
pub use settings::HostSettings;

/// Variables: an ordered JSON object (YAML values are converted on load).
pub type Vars = serde_json::Map<String, serde_json::Value>;

/// Does any key or string value of `vars`, at any depth, contain `word`?
pub fn vars_mention(vars: &Vars, word: &str) -> bool {
    fn value_mentions(value: &serde_json::Value, word: &str) -> bool {
        match value {
            serde_json::Value::String(s) => s.contains(word),
            serde_json::Value::Array(items) => items.iter().any(|v| value_mentions(v, word)),
            serde_json::Value::Object(map) => vars_mention(map, word),
            _ => false,
        }
    }
    vars.iter()
        .any(|(k, v)| k.contains(word) || value_mentions(v, word))
}
