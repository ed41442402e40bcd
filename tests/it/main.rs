//! Integration tests: one binary, one module per area.

mod config;
mod config_patterns;
mod exchange;
mod exchange_cli;
mod exchange_modules_lab;
mod exchange_modules_playbooks;
mod exchange_modules_scripts;
mod lab_sim;
mod lab_winrm;
mod report;
mod report_files;
mod report_json;
