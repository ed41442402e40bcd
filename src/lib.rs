//! salve: a remediation orchestrator for fleets of on-premises Microsoft Exchange servers.
//!
//! Data flows one way: files ([`config`]) → validated [`model`] → [`runner`] (talking to hosts
//! through a [`transport`] and running [`modules`]) → typed [`events`] → [`report`]ers.
//! The simulated fleet used by tests, demos and benchmarks lives in [`lab`]; what salve knows
//! about Exchange builds, updates and indicators of compromise lives in [`exchange`].

pub mod cli;
pub mod config;
pub mod contract;
pub mod diag;
pub mod doctor;
pub mod error_chain;
pub mod events;
pub mod exchange;
pub mod exit;
pub mod journal;
pub mod lab;
pub mod model;
pub mod modules;
pub mod plan;
pub mod queue;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod script;
pub mod secret;
pub mod template;
pub mod transport;
