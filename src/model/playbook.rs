//! Plays and tasks as validated from a playbook file.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::diag::Location;

use super::{HostPattern, Vars};

/// A playbook: plays run in order.
#[derive(Debug, Clone)]
pub struct Playbook {
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex.
    pub digest: String,
    pub plays: Vec<Play>,
    /// Whether any of its files mentions `hostvars` (a template may then read another host's
    /// facts at any time, so no host's facts can be let go before the run ends).
    pub mentions_hostvars: bool,
}

/// One play: a host pattern, variables, and tasks run on each matching host.
#[derive(Debug, Clone)]
pub struct Play {
    pub name: String,
    pub hosts: HostPattern,
    pub vars: Vars,
    /// Batch sizes for rolling execution; the last size repeats. Empty means one batch.
    pub serial: Vec<BatchSize>,
    /// How hosts are grouped into batches.
    pub rolling: Rolling,
    /// Stop the play after a batch in which more than this share of hosts failed.
    pub max_fail_percentage: Option<f64>,
    /// Concurrency cap for this play (overrides `--forks`).
    pub forks: Option<usize>,
    /// Every task of the play's `tasks` section in file order, blocks and task files opened
    /// up: what `task_index` numbers (see [`Play::task_at`]).
    pub tasks: Vec<Task>,
    /// How the `tasks` section runs: its tasks, some grouped in blocks or included files.
    pub body: Vec<Step>,
    /// Tasks run on a host after one of its tasks failed (e.g. leave maintenance cleanly);
    /// the host stays failed.
    pub rescue: Vec<Task>,
    pub handlers: Vec<Task>,
    /// `gather_facts: true` was written: salve gathers no facts by itself (the
    /// `exchange_facts` module does), so the run says so once.
    pub gather_facts: bool,
    /// `any_errors_fatal`: a host's unrescued failure stops the play on every host.
    pub any_errors_fatal: bool,
    pub location: Location,
}

/// One entry of a play's task flow.
#[derive(Debug, Clone)]
pub enum Step {
    /// The play's task with this `task_index`.
    Task(usize),
    Block(Block),
    /// `include_tasks`: its tasks run once, or once per loop item.
    Include(Include),
}

/// `block:` with its `rescue:` and `always:`. The block's `when`, `tags` and `become` are
/// already part of each task inside it (Ansible applies them task by task).
#[derive(Debug, Clone)]
pub struct Block {
    pub name: String,
    pub body: Vec<Step>,
    /// Run when a task of `body` fails; if they all succeed, the host is rescued.
    pub rescue: Vec<Step>,
    /// Run after `body` (and `rescue`) whatever happened.
    pub always: Vec<Step>,
    pub location: Location,
}

/// `include_tasks`: a task file read when the playbook is loaded, run when reached (once, or
/// once per item of its `loop`, the item visible to its tasks).
#[derive(Debug, Clone)]
pub struct Include {
    pub name: String,
    pub file: PathBuf,
    /// Whether the include runs at all (evaluated once, not by each included task).
    pub when: Vec<Expr>,
    pub loop_spec: Option<LoopSpec>,
    pub loop_control: LoopControl,
    pub body: Vec<Step>,
    pub location: Location,
}

/// `loop_control`: how a loop names and paces its items.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoopControl {
    /// The variable an item is bound to (default `item`).
    pub loop_var: Option<String>,
    /// The variable the item's position (from 0) is bound to.
    pub index_var: Option<String>,
    /// A template shown for each item instead of the item itself.
    pub label: Option<String>,
    /// Wait between items.
    pub pause: Option<Duration>,
}

impl LoopControl {
    /// The name the item is bound to.
    pub fn item_name(&self) -> &str {
        self.loop_var.as_deref().unwrap_or("item")
    }
}

/// `become` and `become_user`, at play, block or task level, inherited inward: the account a
/// task's detached steps run as ([`crate::model::run_as::for_task`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Become {
    pub enabled: Option<bool>,
    pub user: Option<String>,
}

impl Become {
    /// The inner setting where it says something, else the outer one (Ansible's inheritance).
    pub fn within(&self, outer: &Become) -> Become {
        Become {
            enabled: self.enabled.or(outer.enabled),
            user: self.user.clone().or_else(|| outer.user.clone()),
        }
    }
}

/// Batching strategy of a play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rolling {
    /// All hosts in `serial` batches.
    #[default]
    Serial,
    /// Members of each DAG (hosts with a `salve_dag` variable) one at a time, DAGs side by
    /// side; hosts outside any DAG in `serial` batches alongside. A failed member stops its
    /// DAG: the remaining members are not started.
    Dag,
}

/// One entry of `serial`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BatchSize {
    Count(usize),
    /// Percentage of the play's hosts (rounded down, at least one host).
    Percent(f64),
}

/// A Jinja2 expression (`when`, `until`, `changed_when`, `failed_when`), already checked to
/// compile.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub source: String,
    pub location: Location,
}

/// What a task loops over.
#[derive(Debug, Clone, PartialEq)]
pub enum LoopSpec {
    /// A literal list; items may contain templates.
    Items(Vec<Value>),
    /// A template that renders to a list, e.g. `"{{ groups['dag1'] }}"`.
    Template(String),
}

/// A module invocation: the module's name and its arguments as written (templates unrendered).
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleCall {
    pub module: String,
    pub args: Value,
    pub location: Location,
}

/// One task.
#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    pub call: ModuleCall,
    pub when: Vec<Expr>,
    pub register: Option<String>,
    pub loop_spec: Option<LoopSpec>,
    /// Extra attempts after the first (with `until`, attempts until it holds).
    pub retries: u32,
    pub delay: Duration,
    pub until: Option<Expr>,
    /// How long salve waits for the task (`timeout`, or Ansible's `async`): a detached step
    /// still running then is left running, never stopped.
    pub timeout: Option<Duration>,
    /// The longest pause between two looks at a detached step (Ansible's `poll`).
    pub poll: Option<Duration>,
    pub ignore_errors: bool,
    pub changed_when: Option<Expr>,
    pub failed_when: Option<Expr>,
    pub notify: Vec<String>,
    /// For a handler: the topics it also answers to (`listen`), besides its name.
    pub listen: Vec<String>,
    pub tags: Vec<String>,
    pub loop_control: LoopControl,
    /// `run_once`: only the first host of the play runs it; the others skip it.
    pub run_once: bool,
    /// `ignore_unreachable`: an unreachable host goes on with its next task.
    pub ignore_unreachable: bool,
    /// `delegate_to: localhost`: the task runs on the controller (the `local` transport)
    /// with the host's variables.
    pub on_controller: bool,
    /// Carried, not yet acted on (see [`Become`]).
    pub become_: Become,
    pub location: Location,
}

/// Where a task sits in its play: its `task_index`, which with the play's index identifies a
/// step in events, the journal, the queue, resume and the plan gate. Tasks are numbered
/// first, then handlers, then rescue tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSection {
    Tasks,
    Handlers,
    Rescue,
}

impl Play {
    /// The task a `task_index` names, with its section.
    pub fn task_at(&self, index: usize) -> Option<(TaskSection, &Task)> {
        let handlers = self.tasks.len();
        let rescue = handlers + self.handlers.len();
        if index < handlers {
            Some((TaskSection::Tasks, &self.tasks[index]))
        } else if index < rescue {
            Some((TaskSection::Handlers, &self.handlers[index - handlers]))
        } else {
            self.rescue
                .get(index - rescue)
                .map(|t| (TaskSection::Rescue, t))
        }
    }

    /// Every task with its `task_index` and section, in numbering order.
    pub fn indexed_tasks(&self) -> impl Iterator<Item = (usize, TaskSection, &Task)> {
        let sections = [
            (TaskSection::Tasks, &self.tasks),
            (TaskSection::Handlers, &self.handlers),
            (TaskSection::Rescue, &self.rescue),
        ];
        sections
            .into_iter()
            .flat_map(|(section, tasks)| tasks.iter().map(move |t| (section, t)))
            .enumerate()
            .map(|(i, (section, t))| (i, section, t))
    }
}
