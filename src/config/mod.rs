//! Loading input files: YAML playbooks and inventories are parsed with source positions
//! (marked-yaml), checked, and turned into the validated [`crate::model`]. Every problem in a
//! file is collected as a [`crate::diag::Diagnostic`] with file, line, column and field path;
//! loading fails only after the whole file has been examined.

pub mod inventory;
pub mod playbook;
