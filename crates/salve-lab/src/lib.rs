//! The lab: a simulated fleet of Exchange servers that speaks real WinRM (and SSH through an
//! OpenSSH `ForceCommand`), for tests, demos, dry rehearsals and benchmarks.
//!
//! Two halves meet at [`host_api`]: the protocol front ends (WinRM over HTTP/HTTPS with Basic
//! and NTLM + message encryption; the SSH ForceCommand) only see a [`host_api::SimHost`], and
//! the simulation (host state, Exchange behaviour, scenarios, the PowerShell subset, the state
//! log) implements it.
//!
//! Simulation map: [`scenario`] (files → [`scenario::FleetSpec`]) → [`fleet`] (hosts, clock,
//! log, DAGs; implements `SimHost`) → [`process`] (the lab's `powershell.exe`) → [`scripts`]
//! (shipped script ids, per [`salve_contract::contract`]) or [`powershell`] (raw-script subset), all
//! changing [`state`] and recording in [`log`]. [`admin`] serves state and log over HTTP on
//! loopback; [`shell`] is the SSH ForceCommand mode.

pub mod admin;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod command;
pub mod fleet;
pub mod fleet_core;
pub mod frontends;
pub mod host_api;
pub mod inventory;
pub mod log;
pub mod powershell;
pub mod process;
pub mod scenario;
pub mod scripts;
pub mod shell;
pub mod state;
pub mod winrm;
