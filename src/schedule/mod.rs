//! Scheduling helpers that decide *when* work may happen. [`window`] holds maintenance
//! windows: when a host may be worked on, and whether a host's estimated work still fits.

pub mod window;

pub use window::{Decision, Schedule, Window, WindowError};
