//! Change plans: what salve intends to do, written down before it does it, so a change board can
//! review it, sign it, and hold the apply to exactly that.
//!
//! A [`Plan`] ([`document`]) records, per host, the facts seen and the steps salve would take
//! with the reason for each, expected reboots, estimated durations and risks, plus the hosts
//! left out and why. Its JSON form is canonical (sorted keys, fixed layout), so the same inputs
//! give the same bytes, and its [`Plan::digest`] covers everything except the approvals.
//! Approvers countersign the digest with Ed25519 keys ([`sign`]); [`verify`] checks that enough
//! trusted approvers signed this exact plan. [`render`] turns a plan into Markdown or a
//! self-contained HTML page for people who do not run salve.

mod canonical;
pub mod collect;
pub mod document;
pub mod render;
pub mod sign;

pub use document::{
    FileRef, HostPlan, InventoryRef, LeftOut, Plan, PlanSelection, Risk, Step, Totals,
};
pub use sign::{Approval, Approver, KeyPair, TrustedKeys, approve, verify, verify_with};

use std::path::PathBuf;

/// Why a plan could not be read, written, approved or accepted.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a salve plan", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{} is plan format {found}; this salve reads format {expected}", path.display())]
    Format {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("{} holds no usable {what} key", path.display())]
    Key {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{} already exists; refusing to overwrite a key", path.display())]
    KeyExists { path: PathBuf },
    #[error(
        "the plan was edited after {name} approved it (approved digest {approved}, plan digest \
         now {actual}); changed: {}",
        if changed.is_empty() { "unknown sections".to_string() } else { changed.join(", ") }
    )]
    DigestMismatch {
        name: String,
        approved: String,
        actual: String,
        changed: Vec<String>,
    },
    #[error(
        "the approval by {name} (key {fingerprint}) has a bad signature; it was forged or altered"
    )]
    BadSignature { name: String, fingerprint: String },
    #[error(
        "the plan has {have} valid approval(s) from trusted keys, {need} required; not trusted \
         (no matching key in {}): {}",
        dir.display(), untrusted.join(", ")
    )]
    UntrustedKeys {
        have: usize,
        need: usize,
        dir: PathBuf,
        untrusted: Vec<String>,
    },
    #[error("the plan has {have} valid approval(s), {need} required")]
    NotEnoughApprovals { have: usize, need: usize },
    #[error("{name}'s key has already approved this plan")]
    AlreadyApproved { name: String },
}
