//! The lab: a simulated fleet of Exchange servers that speaks real WinRM (and SSH through an
//! OpenSSH `ForceCommand`), for salve's tests, demos, dry rehearsals and benchmarks.
//!
//! It depends only on `salve-contract` (the script contract and envelope it plays the host's
//! side of), never on salve itself: a test double that shared the code under test could not
//! catch its mistakes. salve includes it behind its default `lab` feature (`salve lab`,
//! `salve demo`); a runner built without the feature has none of it.
//!
//! Two halves meet at [`host_api`]: the protocol front ends (WinRM over HTTP/HTTPS with Basic
//! and NTLM + message encryption, in [`winrm`]; the SSH ForceCommand, in [`shell`]) only see a
//! [`host_api::SimHost`], and the simulation (host state, Exchange behaviour, scenarios, the
//! PowerShell subset, the state log) implements it.
//!
//! Simulation map, each layer importing only those below it: [`scenario`] (files →
//! [`scenario::FleetSpec`]) → [`fleet`] (builds the hosts; implements `SimHost`) → [`process`]
//! (the lab's `powershell.exe`: its command line, and `-Command -` read as typed input in
//! [`typed_input`]) → [`powershell`] (a PowerShell session: scripts parsed whole with
//! [`ps_grammar`], the console code pages of [`codepage`], the raw-script subset) →
//! [`scripts`] (one file per shipped script id, per `salve_contract::contract`) → [`command`]
//! (a running command's output, sleep and exit) → [`fleet_core`] (every host's [`state`] with its
//! high availability in [`ha`], the
//! [`clock`], the [`log`]), with the lab's own build table in [`catalog`]. [`admin`] serves state and log
//! over HTTP on loopback; [`frontends`] starts a listener per host; [`inventory`] writes the
//! Ansible inventory for a fleet; [`cli`] is `salve lab ...`.

pub mod admin;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod codepage;
pub mod command;
pub mod exchange_config;
pub mod fleet;
pub mod fleet_core;
pub mod frontends;
pub mod ha;
pub mod host_api;
pub mod inventory;
pub mod log;
pub mod powershell;
pub mod process;
pub mod ps_grammar;
pub mod scenario;
pub mod scripts;
pub mod shares;
pub mod shell;
pub mod state;
pub mod typed_input;
pub mod winrm;
