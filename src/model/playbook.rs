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
    pub tasks: Vec<Task>,
    /// Tasks run on a host after one of its tasks failed (e.g. leave maintenance cleanly);
    /// the host stays failed.
    pub rescue: Vec<Task>,
    pub handlers: Vec<Task>,
    pub location: Location,
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
    pub timeout: Option<Duration>,
    pub ignore_errors: bool,
    pub changed_when: Option<Expr>,
    pub failed_when: Option<Expr>,
    pub notify: Vec<String>,
    pub tags: Vec<String>,
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
