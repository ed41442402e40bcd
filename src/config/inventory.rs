//! Ansible-format YAML inventories (`all:`/`children:`/`hosts:`/`vars:`, host ranges) → [`crate::model::Inventory`].
