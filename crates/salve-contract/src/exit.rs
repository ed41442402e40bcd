//! Process exit codes, documented in the README. Every command maps its outcome to one of these.

/// Every host finished every task without failure.
pub const OK: u8 = 0;
/// The run completed but at least one host failed or was unreachable.
pub const HOSTS_FAILED: u8 = 2;
/// Input was invalid (playbook, inventory, scenario, arguments); nothing was run.
pub const INVALID_INPUT: u8 = 3;
/// The run was interrupted (Ctrl-C); some hosts may have been left mid-step (see the report).
pub const INTERRUPTED: u8 = 4;
/// salve itself failed (I/O error writing reports, internal error).
pub const INTERNAL: u8 = 5;
