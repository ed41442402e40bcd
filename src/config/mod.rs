//! Loading input files: YAML playbooks and inventories are parsed with source positions
//! (marked-yaml), checked, and turned into the validated [`crate::model`]. Every problem in a
//! file is collected as a [`crate::diag::Diagnostic`] with file, line, column and field path;
//! loading fails only after the whole file has been examined.

pub mod extra_vars;
pub mod hostrange;
pub mod inventory;
pub mod playbook;
pub mod select;
pub mod yaml;

pub use select::{HostQuery, select_hosts};

use crate::diag::Diagnostic;

/// A successfully loaded value with the warnings found on the way (e.g. clear-text passwords).
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    pub value: T,
    pub warnings: Vec<Diagnostic>,
}
