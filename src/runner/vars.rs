//! The variables a template sees on one host, by precedence (lowest first): inventory
//! variables (all < parent group < child group < host), play `vars`, facts (`set_fact`,
//! `register`), extra variables (`-e`), the loop variables of an enclosing `include_tasks` and
//! `ansible_failed_task`/`ansible_failed_result` in a rescue, then the magic variables salve
//! sets itself
//! (`inventory_hostname`, `group_names`, `groups`, `hostvars`, `play_hosts`,
//! `ansible_check_mode`, `salve_tenant`, and `item` inside a loop).
//!
//! `groups` and `hostvars` grow with the fleet, so they are only built for a task whose text
//! mentions them.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};

use crate::model::{Host, Inventory, Task, Vars};

/// Facts of every host (from `set_fact` and `register`), shared so `hostvars` can see them.
#[derive(Debug, Default, Clone)]
pub struct FactStore(Arc<RwLock<BTreeMap<String, Vars>>>);

impl FactStore {
    pub fn get(&self, host: &str) -> Vars {
        self.read().get(host).cloned().unwrap_or_default()
    }

    pub fn merge(&self, host: &str, facts: Vars) {
        let mut all = self.0.write().unwrap_or_else(|e| e.into_inner());
        all.entry(host.to_string()).or_default().extend(facts);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Vars>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// What is the same for every host of a play.
pub struct PlayScope<'a> {
    /// Index of the play in the playbook.
    pub play_index: usize,
    pub inventory: &'a Inventory,
    pub play_vars: &'a Vars,
    pub extra_vars: &'a Vars,
    pub play_hosts: &'a [String],
    pub check_mode: bool,
    pub facts: &'a FactStore,
    /// Variables of the steps being run: an include's loop item, a rescue's failure.
    pub locals: Vars,
}

/// Which of the fleet-sized variables a task needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    pub groups: bool,
    pub hostvars: bool,
}

impl Needs {
    /// Everything (for steps whose text is not known in advance, such as an include).
    pub const ALL: Needs = Needs {
        groups: true,
        hostvars: true,
    };

    /// Over-approximate from the task's text: including an unused variable is harmless.
    pub fn of(task: &Task) -> Needs {
        let mut text = task.call.args.to_string();
        for e in task
            .when
            .iter()
            .chain(&task.until)
            .chain(&task.changed_when)
            .chain(&task.failed_when)
        {
            text.push_str(&e.source);
        }
        if let Some(l) = &task.loop_spec {
            text.push_str(&format!("{l:?}"));
        }
        Needs {
            groups: text.contains("groups"),
            hostvars: text.contains("hostvars"),
        }
    }
}

impl<'a> PlayScope<'a> {
    /// The same scope with more local variables (they win over the outer ones).
    pub fn with_locals(&self, more: Vars) -> PlayScope<'a> {
        let mut locals = self.locals.clone();
        locals.extend(more);
        PlayScope { locals, ..*self }
    }

    /// The full variable context of `host` for one task.
    pub fn context(&self, host: &Host, needs: Needs, item: Option<&Value>) -> Value {
        let mut ctx: Map<String, Value> = host.vars.clone();
        ctx.extend(self.play_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        ctx.extend(self.facts.get(&host.name));
        ctx.extend(self.extra_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        ctx.extend(self.locals.iter().map(|(k, v)| (k.clone(), v.clone())));
        let short = host.name.split('.').next().unwrap_or(&host.name);
        ctx.insert("inventory_hostname".into(), host.name.clone().into());
        ctx.insert("inventory_hostname_short".into(), short.into());
        let group_names: Vec<Value> = host
            .groups
            .iter()
            .filter(|g| *g != "all" && *g != "ungrouped")
            .map(|g| Value::String(g.clone()))
            .collect();
        ctx.insert("group_names".into(), Value::Array(group_names));
        let play_hosts: Vec<Value> = self
            .play_hosts
            .iter()
            .map(|h| Value::String(h.clone()))
            .collect();
        ctx.insert("play_hosts".into(), Value::Array(play_hosts.clone()));
        ctx.insert("ansible_play_hosts".into(), Value::Array(play_hosts));
        ctx.insert("ansible_check_mode".into(), self.check_mode.into());
        ctx.insert(
            "salve_tenant".into(),
            host.tenant.clone().map_or(Value::Null, Value::String),
        );
        if needs.groups {
            ctx.insert("groups".into(), self.groups());
        }
        if needs.hostvars {
            ctx.insert("hostvars".into(), self.hostvars());
        }
        if let Some(item) = item {
            ctx.insert("item".into(), item.clone());
        }
        Value::Object(ctx)
    }

    fn groups(&self) -> Value {
        let mut map: Map<String, Value> = self
            .inventory
            .groups
            .keys()
            .map(|g| (g.clone(), Value::Array(Vec::new())))
            .collect();
        for h in &self.inventory.hosts {
            for g in &h.groups {
                if let Some(Value::Array(list)) = map.get_mut(g) {
                    list.push(Value::String(h.name.clone()));
                }
            }
        }
        Value::Object(map)
    }

    fn hostvars(&self) -> Value {
        let facts = self.facts.read();
        let map: Map<String, Value> = self
            .inventory
            .hosts
            .iter()
            .map(|h| {
                let mut v = h.vars.clone();
                if let Some(f) = facts.get(&h.name) {
                    v.extend(f.clone());
                }
                v.insert("inventory_hostname".into(), h.name.clone().into());
                (h.name.clone(), Value::Object(v))
            })
            .collect();
        Value::Object(map)
    }
}
