//! The variables a template sees on one host, by precedence (lowest first): inventory
//! variables (all < parent group < child group < host), play `vars`, facts (`set_fact`,
//! `register`), extra variables (`-e`), the loop variables of an enclosing `include_tasks` and
//! `ansible_failed_task`/`ansible_failed_result` in a rescue, then the magic variables salve
//! sets itself
//! (`inventory_hostname`, `group_names`, `groups`, `hostvars`, `play_hosts`,
//! `ansible_check_mode`, `salve_tenant`, and `item` inside a loop).
//!
//! Nothing is merged: a [`Context`] stacks the layers (the inventory's are shared with the
//! groups) and a template looks up only what it reads. The fleet-sized magic variables
//! (`groups`, `hostvars`, `play_hosts`) are built once per play ([`PlayValues`]) and shared by
//! every host; `hostvars` looks a host up only when a template reads it.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use minijinja::Value as JValue;
use minijinja::value::{Enumerator, Object, ObjectRepr, Serde};
use serde_json::{Map, Value};

use crate::model::{Host, Inventory, LayeredVars, Vars};
use crate::template::Context;

/// Facts of every host (from `set_fact` and `register`), shared so `hostvars` can see them.
///
/// A host's facts are a few hundred KB once parsed (an `exchange_facts` result is registered
/// and set as a fact, and read again after patching), so a run that no template can read
/// another host's facts in ([`FactStore::new`]) lets each host's go once its last play is over:
/// memory then follows the hosts in flight, not the fleet.
#[derive(Debug, Default, Clone)]
pub struct FactStore {
    all: Arc<RwLock<BTreeMap<String, Arc<Vars>>>>,
    /// Keep every host's facts to the end of the run (something may read `hostvars`).
    keep_all: bool,
}

impl FactStore {
    /// `keep_all`: a template may read `hostvars`, so no host's facts may be let go.
    pub fn new(keep_all: bool) -> Self {
        FactStore {
            all: Arc::default(),
            keep_all,
        }
    }

    pub fn get(&self, host: &str) -> Arc<Vars> {
        self.read().get(host).cloned().unwrap_or_default()
    }

    pub fn merge(&self, host: &str, facts: Vars) {
        let mut all = self.all.write().unwrap_or_else(|e| e.into_inner());
        Arc::make_mut(all.entry(host.to_string()).or_default()).extend(facts);
    }

    /// `host` has finished its last play: let its facts go, unless the store keeps them all.
    pub fn host_done(&self, host: &str) {
        if !self.keep_all {
            let mut all = self.all.write().unwrap_or_else(|e| e.into_inner());
            all.remove(host);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Vars>>> {
        self.all.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// What is the same for every host of a play, built once when the play starts.
pub struct PlayValues {
    inventory: Arc<Inventory>,
    play_vars: Arc<Vars>,
    extra_vars: Arc<Vars>,
    play_hosts: JValue,
    /// Built once, for the first host context of the play.
    groups: OnceLock<JValue>,
}

impl PlayValues {
    pub fn new(
        inventory: Arc<Inventory>,
        play_vars: &Vars,
        extra_vars: &Vars,
        play_hosts: &[String],
    ) -> Self {
        PlayValues {
            inventory,
            play_vars: Arc::new(play_vars.clone()),
            extra_vars: Arc::new(extra_vars.clone()),
            play_hosts: JValue::from(play_hosts.to_vec()),
            groups: OnceLock::new(),
        }
    }

    /// `groups`: every group's hosts by name.
    fn groups(&self) -> JValue {
        let build = || {
            let mut map: BTreeMap<&str, Vec<&str>> = (self.inventory.groups.keys())
                .map(|g| (g.as_str(), Vec::new()))
                .collect();
            for h in &self.inventory.hosts {
                for g in &h.groups {
                    if let Some(list) = map.get_mut(g.as_str()) {
                        list.push(&h.name);
                    }
                }
            }
            JValue::from(Serde(&map))
        };
        self.groups.get_or_init(build).clone()
    }
}

/// What is the same for every host of a play, and the steps' local variables.
pub struct PlayScope<'a> {
    /// Index of the play in the playbook.
    pub play_index: usize,
    pub values: &'a PlayValues,
    pub check_mode: bool,
    pub facts: &'a FactStore,
    /// Variables of the steps being run: an include's loop item, a rescue's failure.
    pub locals: Arc<Vars>,
}

impl<'a> PlayScope<'a> {
    /// The same scope with more local variables (they win over the outer ones).
    pub fn with_locals(&self, more: Vars) -> PlayScope<'a> {
        let mut locals = self.locals.as_ref().clone();
        locals.extend(more);
        PlayScope {
            locals: Arc::new(locals),
            ..*self
        }
    }

    /// The full variable context of `host` for one task; `item` is bound under `item_name`
    /// with its position under `index_var`.
    pub fn context(&self, host: &Host, item: Option<LoopItem<'_>>) -> Context {
        let values = self.values;
        let mut magic = Map::new();
        let short = host.name.split('.').next().unwrap_or(&host.name);
        magic.insert("inventory_hostname".into(), host.name.clone().into());
        magic.insert("inventory_hostname_short".into(), short.into());
        let group_names: Vec<Value> = host
            .groups
            .iter()
            .filter(|g| *g != "all" && *g != "ungrouped")
            .map(|g| Value::String(g.clone()))
            .collect();
        magic.insert("group_names".into(), Value::Array(group_names));
        magic.insert("ansible_check_mode".into(), self.check_mode.into());
        magic.insert(
            "salve_tenant".into(),
            host.tenant.clone().map_or(Value::Null, Value::String),
        );
        if let Some(item) = item {
            magic.insert(item.name.to_string(), item.value.clone());
            if let Some((index_var, i)) = item.index {
                magic.insert(index_var.to_string(), i.into());
            }
        }
        let hostvars = HostVars {
            inventory: Arc::clone(&values.inventory),
            facts: self.facts.clone(),
        };
        Context::new(host.vars.clone())
            .with_layer(Arc::clone(&values.play_vars))
            .with_layer(self.facts.get(&host.name))
            .with_layer(Arc::clone(&values.extra_vars))
            .with_layer(Arc::clone(&self.locals))
            .with_layer(Arc::new(magic))
            .with_template_value("play_hosts", values.play_hosts.clone())
            .with_template_value("ansible_play_hosts", values.play_hosts.clone())
            .with_template_value("groups", values.groups())
            .with_template_value("hostvars", JValue::from_object(hostvars))
    }
}

/// A loop item as the task binds it.
#[derive(Debug, Clone, Copy)]
pub struct LoopItem<'v> {
    /// `loop_var` (default `item`).
    pub name: &'v str,
    pub value: &'v Value,
    /// `index_var` and the item's position, when the loop names one.
    pub index: Option<(&'v str, usize)>,
}

/// `hostvars`: each host's inventory variables, facts and `inventory_hostname`, looked up when
/// a template reads a host.
#[derive(Debug)]
struct HostVars {
    inventory: Arc<Inventory>,
    facts: FactStore,
}

impl Object for HostVars {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let host = self.inventory.host(key.as_str()?)?;
        let mut name = Map::new();
        name.insert("inventory_hostname".into(), host.name.clone().into());
        let mut vars: LayeredVars = host.vars.clone();
        vars.push(self.facts.get(&host.name));
        vars.push(Arc::new(name));
        Some(Context::new(vars).to_template())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            (self.inventory.hosts.iter())
                .map(|h| JValue::from(h.name.as_str()))
                .collect(),
        )
    }
}
