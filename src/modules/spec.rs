//! What a module *is*, declared once next to it (`pub const SPEC: ModuleSpec` in each module's
//! file) and collected in one table ([`super::table`]). Everything that treats modules
//! differently reads this: argument validation (`salve check`), dispatch, the apply gate of an
//! approved plan (read-only modules pass), the intent log (modules that change hosts record a
//! durable intent first), and the plan (estimates, action texts, reboot flags, which steps
//! count, undo pairs). A new module fills in every field, or it does not compile.

use super::Module;
use super::args::Validator;
use crate::exchange::path::{Step, StepKind};

/// Everything salve knows about one module.
pub struct ModuleSpec {
    /// The task key (`- exchange_update: {...}`).
    pub name: &'static str,
    pub module: &'static dyn Module,
    /// Checks the arguments as written, before anything runs.
    pub validate: Validator,
    pub effect: Effect,
    /// Its step restarts the host (the plan flags it).
    pub reboots: bool,
    /// How long a planned step is booked for in a maintenance window.
    pub estimate: Estimate,
    /// What the plan says a step of it does.
    pub action: Action,
    /// Why the plan says it is needed: the check's own words, or a fixed text where the check's
    /// words change from run to run (the plan keeps only what the same fleet always says, so the
    /// same inputs give the same plan).
    pub reason: Reason,
    /// Whether check mode can say what it would change.
    pub foresight: Foresight,
    /// How its tasks become steps of a plan.
    pub counting: Counting,
    /// What its results give later readers.
    pub provides: Provides,
    /// Its steps run Exchange's management cmdlets (reading the facts at least), which reach
    /// Active Directory as the process's account: on a WinRM or SSH host they need the step's
    /// `become` account (a scheduled task under it; see `detached`), and `salve check` and
    /// `salve plan` refuse them without one.
    pub manages_exchange: bool,
}

impl ModuleSpec {
    /// A module that only reads (facts, checks, templates, waits): it changes nothing, so it
    /// never restarts a host, check mode sees all it would do, and a plan counts it plainly
    /// (30 s) in the rare case it reports a change.
    pub const fn read_only(
        name: &'static str,
        module: &'static dyn Module,
        validate: Validator,
    ) -> ModuleSpec {
        ModuleSpec {
            name,
            module,
            validate,
            effect: Effect::ReadOnly,
            reboots: false,
            estimate: Estimate::Seconds(30),
            action: Action::TaskName,
            reason: Reason::Check,
            foresight: Foresight::Predicts,
            counting: Counting::Plain,
            provides: Provides::Nothing,
            manages_exchange: false,
        }
    }
}

/// What a module's `apply` does to a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Changes nothing: it runs under an approved plan whether or not the plan lists it, and
    /// records no intent.
    ReadOnly,
    /// Installs, restarts, drains, mitigates or runs a user script: the runner records a
    /// durable intent before each call, an approved plan must list the step, and plans mark it
    /// as not to be repeated blindly.
    ChangesHosts,
}

/// How long a planned step takes, for window booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estimate {
    Seconds(u64),
    /// An update: a cumulative update (Setup.exe) takes longer than anything else (an .msp).
    ByUpdateKind {
        cu: u64,
        other: u64,
    },
}

impl Estimate {
    /// Seconds for a step, given the update-path step it installs, if any.
    pub fn seconds(self, update: Option<&Step>) -> u64 {
        match self {
            Estimate::Seconds(s) => s,
            Estimate::ByUpdateKind { cu, other } => match update {
                Some(step) if step.kind == StepKind::Cu => cu,
                _ => other,
            },
        }
    }
}

/// The plan's action text for a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The task's name.
    TaskName,
    /// This text.
    Text(&'static str),
    /// `install KB5003435 (to build 15.2.792.15)`, from the update-path step.
    InstallStep,
}

impl Action {
    /// The text for a step of task `task`, installing `update` where there is one.
    pub fn text(self, task: &str, update: Option<&Step>) -> String {
        match (self, update) {
            (Action::TaskName, _) | (Action::InstallStep, None) => task.to_string(),
            (Action::Text(text), _) => text.to_string(),
            (Action::InstallStep, Some(step)) => {
                let kb = step.kb.map(|kb| kb.to_string());
                let what = match kb {
                    Some(kb) if kb != step.label => format!("{} ({kb})", step.label),
                    _ => step.label.clone(),
                };
                match step.target {
                    Some(target) => format!("install {what} (to build {target})"),
                    None => format!("install {what}"),
                }
            }
        }
    }
}

/// Why the plan says a step is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// What the module's check said (for an update-path step: the path's reason).
    Check,
    /// This text.
    Text(&'static str),
}

/// Whether check mode can predict a module's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Foresight {
    /// Its check reports what it would change.
    Predicts,
    /// Its check skips it ("not run in check mode"); the plan counts that skip as a step.
    Unpredictable,
}

/// How a module's tasks become steps of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Every task that would change something is a step.
    Plain,
    /// The update work: in check mode every update task sees the same facts, so the n-th
    /// would-install task stands for the n-th step of the assessed path, and tasks past the
    /// path's end are no steps.
    UpdatePath,
    /// A restart counts only after a planned update step (once per step), or before the first
    /// one when a restart is already pending.
    AfterUpdate,
    /// One state opens, another undoes it; see [`Pair`].
    Paired(Pair),
}

/// A module whose call with `state: <undo_state>` undoes a planned earlier call. Check mode
/// cannot see a state the plan itself creates, so the plan adds the undo step itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// The `state:` argument of the undoing call.
    pub undo_state: &'static str,
    pub kind: PairKind,
    /// The plan's reason for the undo step.
    pub reason: &'static str,
}

/// When an undo step is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairKind {
    /// Around the update work (enter / leave maintenance): the undo is planned after a planned
    /// opening; an opening left without its undo and without update work planned (planning
    /// stopped before the work) is dropped, as it would take the server out of service for
    /// nothing.
    Bracket,
    /// A stop-gap until the update work fixes the server (a mitigation): removed only when
    /// update work is planned too.
    StopGap,
}

/// What a module's results give later readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provides {
    Nothing,
    /// The `exchange` facts: the plan's facts and risks, and the apply gate's drift check.
    ExchangeFacts,
    /// Host variables named by its argument keys (later tasks may read them).
    Variables,
    /// The server's component states after the step (`ServerWideOffline` Inactive: in
    /// maintenance), for the run report's maintenance timeline.
    MaintenanceState,
    /// IOC findings (`compromised`, `findings` with paths and hashes), for the run report's
    /// evidence.
    IocFindings,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::modules::table;

    /// The properties of one module fit together.
    #[test]
    fn specs_are_consistent() {
        for spec in table() {
            let name = spec.name;
            if spec.effect == Effect::ReadOnly {
                assert!(!spec.reboots, "{name}: a read-only module cannot restart");
                assert_eq!(spec.counting, Counting::Plain, "{name}");
                assert_eq!(spec.foresight, Foresight::Predicts, "{name}");
            }
            if let Counting::Paired(pair) = spec.counting {
                let state = json!({ "state": pair.undo_state });
                assert!(
                    (spec.validate)(&state).is_ok(),
                    "{name}: `state: {}` is not accepted",
                    pair.undo_state
                );
            }
            if spec.counting == Counting::UpdatePath {
                assert_eq!(spec.action, Action::InstallStep, "{name}");
            }
        }
        let count = |f: &dyn Fn(&ModuleSpec) -> bool| table().iter().filter(|s| f(s)).count();
        assert_eq!(count(&|s| s.counting == Counting::UpdatePath), 1);
        assert_eq!(count(&|s| s.provides == Provides::ExchangeFacts), 1);
    }
}
