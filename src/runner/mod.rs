//! The runner: schedules hosts with bounded concurrency, serial batches, failure thresholds,
//! retries, timeouts and Ctrl-C handling, and emits [`crate::events::Event`]s.
