//! Integration tests: one binary, one module per area.

mod config;
mod config_patterns;
mod exchange;
mod exchange_cli;
mod journal;
mod lab_sim;
mod lab_winrm;
mod plan;
mod report;
mod report_files;
mod report_json;
mod windows;
