//! The apply-time gate of an approved plan: on each host only the plan's steps run (plus the
//! read-only tasks around them: facts, verification, scans, assertions), and before anything
//! is changed, the host's live facts are compared with the facts the plan was made from. A
//! host that drifted is left alone and reported as drifted: nothing is changed on stale
//! assumptions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde_json::Value;

/// What an approved plan allows, per host.
#[derive(Debug, Default)]
pub struct PlanGate {
    /// `(play, task index)` of every planned step, per host.
    steps: BTreeMap<String, BTreeSet<(usize, usize)>>,
    /// The facts fingerprint the plan saw, per host.
    facts: BTreeMap<String, Value>,
    /// Hosts whose facts have been compared already (only the first read counts: later ones
    /// see the plan's own changes).
    compared: Mutex<BTreeSet<String>>,
}

impl PlanGate {
    pub fn new(
        steps: BTreeMap<String, BTreeSet<(usize, usize)>>,
        facts: BTreeMap<String, Value>,
    ) -> Self {
        PlanGate {
            steps,
            facts,
            compared: Mutex::default(),
        }
    }

    /// May this task run on this host? Read-only modules (see [`crate::modules::Effect`]) run
    /// whether or not the plan lists them.
    pub fn allows(&self, host: &str, play: usize, task_index: usize, module: &str) -> bool {
        crate::modules::spec(module).is_some_and(|s| s.effect == crate::modules::Effect::ReadOnly)
            || self
                .steps
                .get(host)
                .is_some_and(|s| s.contains(&(play, task_index)))
    }

    /// On the host's first facts read: how its facts differ from the plan's, if they do.
    pub fn drift(&self, host: &str, live: &Value) -> Option<String> {
        if !self
            .compared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host.to_string())
        {
            return None;
        }
        let planned = self.facts.get(host)?;
        let live = crate::plan::collect::fingerprint(live);
        let planned = crate::plan::collect::fingerprint(planned);
        // The fingerprint's keys are the facts the plan's steps were decided from.
        let empty = serde_json::Map::new();
        let differences: Vec<String> = planned
            .as_object()
            .unwrap_or(&empty)
            .iter()
            .filter(|(k, v)| live.get(k.as_str()) != Some(*v))
            .map(|(k, v)| {
                let now = live
                    .get(k.as_str())
                    .map_or("none".to_string(), Value::to_string);
                format!("{k} was {v} when planned, is {now} now")
            })
            .collect();
        (!differences.is_empty())
            .then(|| format!("drifted since the plan: {}", differences.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gate() -> PlanGate {
        let steps = [("ex01".to_string(), [(0, 3)].into_iter().collect())]
            .into_iter()
            .collect();
        let facts = [(
            "ex01".to_string(),
            json!({"build": "15.2.792.3", "installed_kbs": [], "pending_reboot": [],
                                                 "mitigated": false, "in_maintenance": false}),
        )]
        .into_iter()
        .collect();
        PlanGate::new(steps, facts)
    }

    #[test]
    fn only_planned_steps_and_read_only_tasks_pass() {
        let g = gate();
        assert!(g.allows("ex01", 0, 3, "exchange_update"));
        assert!(!g.allows("ex01", 0, 4, "reboot"));
        assert!(g.allows("ex01", 0, 9, "exchange_facts"));
        assert!(!g.allows("ex02", 0, 3, "exchange_update"));
    }

    #[test]
    fn drift_is_judged_on_the_first_read_only() {
        let g = gate();
        let live = json!({"build": "15.2.792.10", "installed_kbs": ["KB5000871"], "pending_reboot": [],
                          "mitigated": false, "in_maintenance": false, "assessment": {}});
        let d = g.drift("ex01", &live).unwrap();
        assert!(
            d.contains("build was \"15.2.792.3\" when planned, is \"15.2.792.10\" now"),
            "{d}"
        );
        assert_eq!(
            g.drift("ex01", &live),
            None,
            "later reads see the plan's own changes"
        );
    }
}
