//! Integration tests: one binary, one module per area.

mod ansible_corpus;
mod architecture;
mod catalogue_cli;
mod check_mode;
mod cli;
mod client_certificate;
mod config;
mod config_patterns;
mod dag_identity;
mod delivery;
mod detached;
mod doctor;
mod exchange;
mod exchange_cli;
mod exchange_modules_lab;
mod exchange_modules_playbooks;
mod exchange_modules_scripts;
mod journal;
#[cfg(feature = "kerberos")]
mod kerberos;
#[cfg(feature = "kerberos")]
mod kerberos_support;
mod lab_sim;
mod lab_support;
mod lab_winrm;
mod maintenance_state;
mod plan;
mod plan_apply;
mod queue;
mod queue_apply;
mod queue_crash;
mod queue_support;
mod remediation;
mod remediation_2026;
mod report;
mod report_files;
mod report_json;
mod resume;
mod run_report;
mod script_standard;
mod shipped_answers;
mod ssh;
mod windows;
mod winrm_run;
