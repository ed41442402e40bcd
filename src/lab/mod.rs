//! The lab: a simulated fleet of Exchange servers speaking real WinRM, for tests, demos and
//! benchmarks.

pub mod cli;
