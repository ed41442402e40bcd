//! salve: a remediation orchestrator for fleets of on-premises Microsoft Exchange servers.
//!
//! Data flows one way: files ([`config`]) → validated [`model`] → [`plan`] (what would change)
//! → execution ([`launch`] assembles a run; the [`runner`] talks to hosts through a
//! [`transport`] and runs [`modules`]) → typed [`events`] → [`report`]ers, the [`journal`] and
//! the [`queue`]. The [`cli`] parses arguments and calls one [`app`] function per command.
//! `ARCHITECTURE.md` at the repository root draws the map.
//! What salve knows about Exchange builds, updates and indicators of compromise lives in
//! [`exchange`]. The shipped-script [`contract`], [`diag`]nostics and [`exit`] codes come from
//! the `salve-contract` crate, shared with the simulated fleet (the `salve-lab` crate, in the
//! binary behind the default `lab` feature for `salve lab` and `salve demo`).

pub mod app;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod error_chain;
pub mod events;
pub mod exchange;
pub mod journal;
pub mod launch;
pub mod model;
pub mod modules;
pub mod package_server;
pub mod plan;
pub mod queue;
pub mod report;
pub mod run_report;
pub mod runner;
pub mod schedule;
pub mod script;
pub mod secret;
pub mod state;
pub mod template;
pub mod transport;

// Shared with the lab through the contract crate; re-exported so `crate::diag` etc. read as
// before.
pub use salve_contract::{contract, diag, exit, share};
