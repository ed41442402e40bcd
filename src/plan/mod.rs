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

#[cfg(test)]
/// A small two-tenant plan used by the tests of this module and its siblings.
pub(crate) fn sample() -> Plan {
    let su = |play, index, reason: &str| Step {
        play,
        task_index: index,
        task: "Install security update".into(),
        module: "exchange_update".into(),
        action: "install Exchange 2016 CU19 SU KB5000871".into(),
        reason: reason.into(),
        reboot: true,
        estimated_seconds: 2700,
        non_idempotent: false,
    };
    let ex01 = HostPlan {
        name: "ex01.acme.local".into(),
        tenant: Some("acme".into()),
        facts: serde_json::json!({"build": "15.1.2106.2", "pending_reboot": false, "dag": "DAG1"}),
        window: vec!["Sat 22:00-Sun 04:00 Europe/Brussels".into()],
        steps: vec![su(
            0,
            2,
            "build 15.1.2106.2 is 2016 CU19 without KB5000871: CVE-2021-26855 open",
        )],
        risks: vec![Risk::DagMember { dag: "DAG1".into() }],
    };
    let mail = HostPlan {
        name: "mail.globex.test".into(),
        tenant: Some("globex".into()),
        facts: serde_json::json!({"build": "15.2.858.5", "free_mb": 9000.5}),
        window: vec![],
        steps: vec![
            Step {
                play: 0,
                task_index: 1,
                task: "Apply URL rewrite mitigation".into(),
                module: "exchange_mitigate".into(),
                action: "add the EOMT URL rewrite rule <X-AnonResource>".into(),
                reason: "CVE-2021-26855 open until the SU is installed".into(),
                reboot: false,
                estimated_seconds: 60,
                non_idempotent: true,
            },
            su(0, 2, "build 15.2.858.5 is 2019 CU9 without KB5000871"),
        ],
        risks: vec![
            Risk::PendingReboot,
            Risk::LowDisk {
                drive: "C:".into(),
                free_mb: 9000,
                needed_mb: 30000,
            },
        ],
    };
    let mut plan = Plan::new(
        "2024-03-02T10:00:00Z".parse().unwrap(),
        FileRef {
            path: "playbooks/proxylogon.yml".into(),
            sha256: "ab".repeat(32),
        },
        InventoryRef {
            sources: vec!["inventories/fleet.yml".into()],
            sha256: "cd".repeat(32),
        },
        PlanSelection {
            limit: None,
            tenant: None,
            all_tenants: true,
        },
        vec![mail, ex01],
        vec![LeftOut {
            name: "ex09.acme.local".into(),
            tenant: Some("acme".into()),
            reason: "already on 15.1.2106.13 (fixed)".into(),
        }],
    );
    // Pinned so that snapshots and digests do not move with the crate version.
    plan.salve_version = "0.1.0".into();
    plan
}
