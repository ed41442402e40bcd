//! What salve and its simulated fleet (the `salve-lab` crate) share, and nothing else: the
//! shipped-script [`contract`] (requests and answers per script id, each [`answer`] read with the
//! field at fault named), the script envelope on
//! the [`wire`], what counts as a file [`share`], [`diag`]nostics for bad input files, and process [`exit`] codes.
//!
//! Both sides depend on this crate and never on each other, so the lab can play the host's
//! side of the contract without reaching into salve's runner or catalogue.

pub mod answer;
pub mod contract;
pub mod diag;
pub mod exit;
pub mod share;
pub mod wire;
