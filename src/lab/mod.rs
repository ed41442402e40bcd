//! The lab: a simulated fleet of Exchange servers that speaks real WinRM (and SSH through an
//! OpenSSH `ForceCommand`), for tests, demos, dry rehearsals and benchmarks.
//!
//! Two halves meet at [`host_api`]: the protocol front ends (WinRM over HTTP/HTTPS with Basic
//! and NTLM + message encryption; the SSH ForceCommand) only see a [`host_api::SimHost`], and
//! the simulation (host state, Exchange behaviour, scenarios, the PowerShell subset, the state
//! log) implements it.

pub mod cli;
pub mod host_api;
pub mod winrm;
