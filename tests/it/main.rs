//! Integration tests: one binary, one module per area.

mod check_mode;
mod cli;
mod config;
mod config_patterns;
mod doctor;
mod exchange;
mod exchange_cli;
mod exchange_modules_lab;
mod exchange_modules_playbooks;
mod exchange_modules_scripts;
mod journal;
mod lab_sim;
mod lab_support;
mod lab_winrm;
mod plan;
mod plan_apply;
mod queue;
mod queue_support;
mod remediation;
mod report;
mod report_files;
mod report_json;
mod resume;
mod ssh;
mod windows;
mod winrm_run;
