//! YAML playbooks → [`crate::model::Playbook`].
