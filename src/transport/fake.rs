//! A scripted fake transport for unit tests.
