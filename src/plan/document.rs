//! The plan document: serde types for the JSON file a change board reviews and signs.
//!
//! The file form is canonical JSON ([`Plan::to_json`]): keys sorted, two-space indent, hosts in
//! the order the planner gave (it sorts them by tenant and name). [`Plan::digest`] is the SHA-256
//! of the compact canonical bytes of everything except `approvals`, so approving a plan never
//! changes its digest, and any other edit does. Unknown fields are refused when reading, so
//! nothing can hide in a plan outside the digest.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::PlanError;
use super::canonical;
use super::sign::Approval;

/// The plan format this salve writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// A change plan: what salve would do on which hosts, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// [`FORMAT_VERSION`] of the writer.
    pub format: u32,
    pub created_at: jiff::Timestamp,
    /// Version of the salve that made the plan.
    pub salve_version: String,
    /// Version of the build/CVE catalogue the plan's assessments used; `apply` refuses the plan
    /// under another catalogue (empty in plans made before it was recorded).
    #[serde(default)]
    pub catalogue_version: String,
    pub playbook: FileRef,
    pub inventory: InventoryRef,
    pub selection: PlanSelection,
    /// Hosts that would be worked on.
    pub hosts: Vec<HostPlan>,
    /// Hosts matched by the playbook but left out, each with the reason.
    pub left_out: Vec<LeftOut>,
    pub totals: Totals,
    /// Countersignatures; not covered by the digest.
    #[serde(default)]
    pub approvals: Vec<Approval>,
}

/// A file the plan was made from, with the SHA-256 of its bytes (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    pub path: String,
    pub sha256: String,
}

/// The inventory sources, in order, and the SHA-256 over their bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryRef {
    pub sources: Vec<String>,
    pub sha256: String,
}

/// How the hosts were chosen on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSelection {
    pub limit: Option<String>,
    pub tenant: Option<String>,
    pub all_tenants: bool,
}

/// What would happen on one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostPlan {
    pub name: String,
    pub tenant: Option<String>,
    /// Facts read while planning (build, pending reboot, DAG, disk...), as the modules reported
    /// them. `apply` compares them with live facts to detect drift.
    pub facts: serde_json::Value,
    /// Maintenance window(s) as written in `salve_maintenance_window`, if any.
    #[serde(default)]
    pub window: Vec<String>,
    pub steps: Vec<Step>,
    pub risks: Vec<Risk>,
}

/// One step salve would take on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Play index and task index within the play (handlers follow the tasks).
    pub play: usize,
    pub task_index: usize,
    pub task: String,
    pub module: String,
    /// What would be done, in a phrase ("install Exchange 2016 CU23 SU 2023-03").
    pub action: String,
    /// Why ("build 15.1.2106.2 is 2016 CU19 without KB5000871: CVE-2021-26855 open").
    pub reason: String,
    pub reboot: bool,
    pub estimated_seconds: u64,
    /// Running the step twice is not safe; a crash mid-step needs a person to look.
    pub non_idempotent: bool,
}

/// Something a reviewer should weigh before approving work on a host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Risk {
    /// Member of a database availability group: work is rolled one member at a time.
    DagMember { dag: String },
    /// A reboot was already pending before salve touched the host.
    PendingReboot,
    /// Free space on the install drive is below what the update needs.
    LowDisk {
        drive: String,
        free_mb: u64,
        needed_mb: u64,
    },
    /// The host carries an interim mitigation that the plan would keep or remove.
    Mitigation { name: String },
    /// Anything else, in words.
    Other { text: String },
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Risk::DagMember { dag } => write!(f, "member of DAG {dag}"),
            Risk::PendingReboot => f.write_str("a reboot was already pending"),
            Risk::LowDisk {
                drive,
                free_mb,
                needed_mb,
            } => write!(
                f,
                "low disk: {free_mb} MB free on {drive}, {needed_mb} MB needed"
            ),
            Risk::Mitigation { name } => write!(f, "interim mitigation in place: {name}"),
            Risk::Other { text } => f.write_str(text),
        }
    }
}

/// A host the playbook matched that the plan leaves alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeftOut {
    pub name: String,
    pub tenant: Option<String>,
    pub reason: String,
}

/// Sums over the hosts, for the summary table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    pub hosts: usize,
    pub hosts_with_steps: usize,
    pub steps: usize,
    pub reboots: usize,
    /// Sum of every step's estimate (hosts in parallel finish sooner).
    pub estimated_seconds: u64,
    pub left_out: usize,
}

impl Totals {
    /// Totals over these hosts, with `left_out` hosts left out.
    pub fn of(hosts: &[&HostPlan], left_out: usize) -> Totals {
        let steps = || hosts.iter().flat_map(|h| &h.steps);
        Totals {
            hosts: hosts.len(),
            hosts_with_steps: hosts.iter().filter(|h| !h.steps.is_empty()).count(),
            steps: steps().count(),
            reboots: steps().filter(|s| s.reboot).count(),
            estimated_seconds: steps().map(|s| s.estimated_seconds).sum(),
            left_out,
        }
    }
}

impl HostPlan {
    pub fn reboots(&self) -> usize {
        self.steps.iter().filter(|s| s.reboot).count()
    }

    pub fn estimated_seconds(&self) -> u64 {
        self.steps.iter().map(|s| s.estimated_seconds).sum()
    }
}

impl Plan {
    /// A new plan: hosts and left-out hosts sorted by tenant then name, totals computed.
    pub fn new(
        created_at: jiff::Timestamp,
        playbook: FileRef,
        inventory: InventoryRef,
        selection: PlanSelection,
        mut hosts: Vec<HostPlan>,
        mut left_out: Vec<LeftOut>,
    ) -> Plan {
        hosts.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
        left_out.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
        let totals = Totals::of(&hosts.iter().collect::<Vec<_>>(), left_out.len());
        Plan {
            format: FORMAT_VERSION,
            created_at,
            salve_version: env!("CARGO_PKG_VERSION").to_string(),
            catalogue_version: crate::exchange::catalogue::catalogue()
                .map(|c| c.version.clone())
                .unwrap_or_default(),
            playbook,
            inventory,
            selection,
            hosts,
            left_out,
            totals,
            approvals: Vec::new(),
        }
    }

    /// The plan as a JSON value, approvals included.
    fn value(&self) -> serde_json::Value {
        to_value(self)
    }

    /// Everything the digest covers: the plan without `approvals`.
    fn signed_value(&self) -> serde_json::Value {
        let mut value = self.value();
        if let Some(map) = value.as_object_mut() {
            map.remove("approvals");
        }
        value
    }

    /// The canonical file text.
    pub fn to_json(&self) -> String {
        canonical::pretty(&self.value())
    }

    /// SHA-256 (hex) of the compact canonical JSON of the plan without its approvals.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(canonical::compact(&self.signed_value())))
    }

    /// A digest per part of the plan (`header`, `host NAME`, `left_out`, `totals`), recorded in
    /// approvals so that a later mismatch can name what was edited.
    pub fn section_digests(&self) -> BTreeMap<String, String> {
        let hash = |v: serde_json::Value| hex::encode(Sha256::digest(canonical::compact(&v)));
        let mut out = BTreeMap::new();
        out.insert("left_out".to_string(), hash(to_value(&self.left_out)));
        out.insert("totals".to_string(), hash(to_value(&self.totals)));
        for host in &self.hosts {
            out.insert(format!("host {}", host.name), hash(to_value(host)));
        }
        let mut header = self.signed_value();
        if let Some(map) = header.as_object_mut() {
            for key in ["hosts", "left_out", "totals"] {
                map.remove(key);
            }
        }
        out.insert("header".to_string(), hash(header));
        out
    }

    /// Sections whose digest differs between `approved` and this plan (added, removed or
    /// changed), in order.
    pub fn changed_sections(&self, approved: &BTreeMap<String, String>) -> Vec<String> {
        let now = self.section_digests();
        let mut keys: Vec<&String> = now.keys().chain(approved.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter(|k| now.get(*k) != approved.get(*k))
            .cloned()
            .collect()
    }

    /// Read a plan file; refuses unknown fields and other format versions.
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let probe: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| PlanError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        let found = probe.get("format").and_then(serde_json::Value::as_u64);
        if let Some(found) = found.filter(|f| *f != u64::from(FORMAT_VERSION)) {
            return Err(PlanError::Format {
                path: path.to_path_buf(),
                found: u32::try_from(found).unwrap_or(u32::MAX),
                expected: FORMAT_VERSION,
            });
        }
        serde_json::from_value(probe).map_err(|source| PlanError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Write the canonical text, replacing the file atomically (temporary file + rename).
    pub fn save(&self, path: &Path) -> Result<(), PlanError> {
        let err = |source| PlanError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, self.to_json()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

/// A plan part as a JSON value. Plain data with string keys: serialising cannot fail.
fn to_value<T: Serialize>(part: &T) -> serde_json::Value {
    serde_json::to_value(part).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::sample;
    use serde_json::json;

    #[test]
    fn hosts_are_sorted_and_totals_computed() {
        let plan = sample();
        let names: Vec<&str> = plan.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["ex01.acme.local", "mail.globex.test"]);
        assert_eq!(
            plan.totals,
            Totals {
                hosts: 2,
                hosts_with_steps: 2,
                steps: 3,
                reboots: 2,
                estimated_seconds: 5460,
                left_out: 1
            }
        );
    }

    #[test]
    fn same_inputs_give_the_same_bytes_and_a_round_trip_keeps_them() {
        let a = sample().to_json();
        assert_eq!(a, sample().to_json());
        let back: Plan = serde_json::from_str(&a).unwrap();
        assert_eq!(back.to_json(), a);
        assert_eq!(back.digest(), sample().digest());
        // Sorted keys: `approvals` comes first at the top level, `format` before `hosts`.
        let first_keys: Vec<&str> = a.lines().skip(1).take(3).map(str::trim).collect();
        assert!(first_keys[0].starts_with("\"approvals\""), "{first_keys:?}");
    }

    #[test]
    fn approvals_do_not_change_the_digest_but_any_edit_does() {
        let plan = sample();
        let digest = plan.digest();
        let mut approved = plan.clone();
        approved.approvals.push(Approval {
            name: "Jane".into(),
            public_key: "x".into(),
            signed_at: "2024-03-02T11:00:00Z".parse().unwrap(),
            plan_digest: digest.clone(),
            sections: BTreeMap::new(),
            signature: "y".into(),
        });
        assert_eq!(approved.digest(), digest);
        let mut edited = plan.clone();
        edited.hosts[1].steps[0].estimated_seconds += 1;
        assert_ne!(edited.digest(), digest);
        assert_eq!(
            edited.changed_sections(&plan.section_digests()),
            ["host mail.globex.test"]
        );
        let mut retimed = plan.clone();
        retimed.created_at = "2024-03-02T10:00:01Z".parse().unwrap();
        assert_eq!(
            retimed.changed_sections(&plan.section_digests()),
            ["header"]
        );
    }

    #[test]
    fn unknown_fields_and_other_formats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let mut value = serde_json::to_value(sample()).unwrap();
        value["hosts"][0]["extra"] = json!("hidden");
        std::fs::write(&path, value.to_string()).unwrap();
        assert!(matches!(Plan::load(&path), Err(PlanError::Parse { .. })));
        value["hosts"][0].as_object_mut().unwrap().remove("extra");
        value["format"] = json!(2);
        std::fs::write(&path, value.to_string()).unwrap();
        let err = Plan::load(&path).unwrap_err();
        assert!(err.to_string().contains("plan format 2"), "{err}");
        sample().save(&path).unwrap();
        assert_eq!(Plan::load(&path).unwrap(), sample());
    }
}
