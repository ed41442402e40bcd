//! Remediation steps and the planner that finds the shortest supported path to "fixed".
//!
//! A [`Step`] is what a later module (`exchange_update`) executes: install a CU, an SU, an
//! Exchange 2010 update rollup, or a .NET Framework version, or prepare the forest's Active
//! Directory for a CU. A [`Path`] is the ordered steps from
//! the server's current CU.
//!
//! Path policy (documented in the README):
//! 1. Nothing open: no steps.
//! 2. The current CU has SUs that close every open CVE: install its **latest** SU only (SUs are
//!    cumulative within a CU, so the latest contains all the earlier ones).
//! 3. Otherwise upgrade to the family's **newest** CU (2013 → CU23), then install its latest SU.
//!    .NET and CU upgrades leapfrog along the supportability matrix: a CU is installed only on a
//!    .NET version it supports, and .NET only to a version the installed CU supports. The planner
//!    searches breadth-first for the fewest steps. Without a known .NET version it assumes the
//!    oldest one the current CU supports (worst case); a .NET step is then "make sure at least this
//!    version is installed". Where the matrix has no data for the current CU, or no leapfrog path
//!    exists, it falls back to Microsoft's rule: install the newest .NET the target CU supports,
//!    then immediately the CU.
//! 4. With a CU upgrade ahead, an SU of the current CU that closes some open CVEs (older-CU SUs
//!    for ProxyLogon) is offered as a separate **stop-gap**, never as the path.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::build::{Build, Family};
use super::catalogue::{Catalogue, FamilyEntry, Level, LevelKind, LicenceSwitch, Update};
use super::dotnet::DotNet;
use super::ids::{Cve, Kb};

/// What a step installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepKind {
    #[serde(rename = "CU")]
    Cu,
    #[serde(rename = "SU")]
    Su,
    /// An Exchange 2010 update rollup.
    #[serde(rename = "RU")]
    Ru,
    #[serde(rename = "DotNet")]
    DotNet,
    /// `/PrepareSchema` and `/PrepareAD` with a CU's media: once per forest, before the first
    /// CU whose AD versions the forest has not reached (see `exchange_update`).
    #[serde(rename = "PrepareAD")]
    PrepareAd,
}

/// One remediation step. Its serde form (its fields plus a `display` line) is what
/// `exchange_update` writes under `steps` in its result and what the change-board plan reads
/// back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Written", from = "Written")]
pub struct Step {
    pub kind: StepKind,
    /// `CU21`, `KB5004779`, `SP3 RU32`, `.NET 4.8`.
    pub label: String,
    /// The Exchange build after the step; `None` for a .NET step.
    pub target: Option<Build>,
    pub kb: Option<Kb>,
    /// The .NET version a .NET step installs (skip when this or newer is present).
    pub dotnet: Option<DotNet>,
    /// A CU step needs one of these .NET versions installed first.
    pub requires_dotnet: Vec<DotNet>,
    /// An SU only installs on this exact CU build (SUs are CU-specific).
    pub requires_build: Option<Build>,
    /// Setup's licence switch for a CU step.
    pub licence_switch: Option<LicenceSwitch>,
    /// Why the step is on the path.
    pub reason: String,
    /// What must hold before the step runs, for people.
    pub prerequisite: String,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)?;
        match self.kind {
            StepKind::Cu if !self.requires_dotnet.is_empty() => {
                write!(f, " (needs .NET {})", or_list(&self.requires_dotnet))
            }
            StepKind::Ru => match self.kb {
                Some(kb) => write!(f, " {kb}"),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

/// A [`Step`] as written in results: its fields plus `display`, the line people read (written,
/// ignored when read back).
#[derive(Serialize, Deserialize)]
struct Written {
    display: String,
    kind: StepKind,
    label: String,
    target: Option<Build>,
    kb: Option<Kb>,
    dotnet: Option<DotNet>,
    requires_dotnet: Vec<DotNet>,
    requires_build: Option<Build>,
    licence_switch: Option<LicenceSwitch>,
    reason: String,
    prerequisite: String,
}

impl From<Step> for Written {
    fn from(step: Step) -> Self {
        Written {
            display: step.to_string(),
            kind: step.kind,
            label: step.label,
            target: step.target,
            kb: step.kb,
            dotnet: step.dotnet,
            requires_dotnet: step.requires_dotnet,
            requires_build: step.requires_build,
            licence_switch: step.licence_switch,
            reason: step.reason,
            prerequisite: step.prerequisite,
        }
    }
}

impl From<Written> for Step {
    fn from(w: Written) -> Self {
        Step {
            kind: w.kind,
            label: w.label,
            target: w.target,
            kb: w.kb,
            dotnet: w.dotnet,
            requires_dotnet: w.requires_dotnet,
            requires_build: w.requires_build,
            licence_switch: w.licence_switch,
            reason: w.reason,
            prerequisite: w.prerequisite,
        }
    }
}

/// The ordered steps from a server's current CU to fixed. Serialises as the list of steps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Path {
    /// Where the path starts, e.g. `2016 CU17`.
    pub start: String,
    pub steps: Vec<Step>,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            return write!(f, "{}: nothing to install", self.start);
        }
        f.write_str(&self.start)?;
        for step in &self.steps {
            write!(f, " → {step}")?;
        }
        Ok(())
    }
}

impl Serialize for Path {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.steps.serialize(s)
    }
}

/// What the current CU allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// No tracked CVE is open.
    None,
    /// An SU for the current CU closes every open CVE.
    Su,
    /// The current CU's SUs cannot close every open CVE: a CU (2010: RU) upgrade comes first.
    CuUpgrade,
    /// The build is not in the catalogue and CVEs may be open: no path is planned.
    Unknown,
}

/// The planner's result for a server on a known level.
#[derive(Debug)]
pub struct Planned {
    pub route: Route,
    pub path: Path,
    pub stopgap: Option<Step>,
    pub notes: Vec<String>,
}

/// Where a server stands within a family: its level and the highest SU installed on it.
#[derive(Debug, Clone, Copy)]
pub struct Standing<'c> {
    pub entry: &'c FamilyEntry,
    pub level: usize,
    /// Index into the level's `updates` of the highest installed SU.
    pub installed: Option<usize>,
}

impl<'c> Standing<'c> {
    pub fn level(&self) -> &'c Level {
        &self.entry.levels[self.level]
    }

    /// The level's SUs not installed yet, oldest first.
    fn pending(&self) -> &'c [Update] {
        let updates = &self.level().updates;
        &updates[self.installed.map_or(0, |i| i + 1)..]
    }

    /// e.g. `2016 CU17`.
    pub fn label(&self) -> String {
        format!("{} {}", self.entry.family.short(), self.level().cu)
    }
}

/// Plan the path from `standing` given the CVEs still open and the .NET version (if known).
pub fn plan(
    cat: &Catalogue,
    standing: Standing<'_>,
    open: &BTreeSet<Cve>,
    dotnet: Option<DotNet>,
) -> Planned {
    let level = standing.level();
    let mut notes = Vec::new();
    let mut path = Path {
        start: standing.label(),
        steps: Vec::new(),
    };
    let pending = standing.pending();
    if open.is_empty() {
        if let Some(latest) = pending.last() {
            notes.push(format!(
                "{} ({}) is the latest SU for {}; the tracked CVEs do not need it",
                latest.name(),
                latest.build,
                level.cu
            ));
        }
        return Planned {
            route: Route::None,
            path,
            stopgap: None,
            notes,
        };
    }
    if let Some(latest) = pending.last()
        && open.is_subset(&fixed_at_latest(cat, level))
    {
        path.steps.push(su_step(level, latest, open));
        return Planned {
            route: Route::Su,
            path,
            stopgap: None,
            notes,
        };
    }
    let stopgap = pending.last().and_then(|latest| {
        let closes: BTreeSet<Cve> = pending
            .iter()
            .flat_map(|u| u.fixes.iter().copied())
            .filter(|c| open.contains(c))
            .collect();
        (!closes.is_empty()).then(|| stopgap_step(level, latest, &closes))
    });
    let target = standing.entry.levels.len() - 1;
    path.steps = upgrade_steps(cat, standing, target, open, dotnet, &mut notes);
    let newest = &standing.entry.levels[target];
    if let Some(latest) = newest.updates.last() {
        path.steps.push(su_step(newest, latest, open));
    }
    Planned {
        route: Route::CuUpgrade,
        path,
        stopgap,
        notes,
    }
}

/// Every CVE fixed once `level`'s last update is installed: the fixes of every level up to it
/// on its number line, and of its own updates.
fn fixed_at_latest(cat: &Catalogue, level: &Level) -> BTreeSet<Cve> {
    let mut fixed: BTreeSet<Cve> = cat
        .levels_at_or_below(level.build)
        .flat_map(|l| l.fixes.iter().copied())
        .collect();
    fixed.extend(level.fixed_by_updates());
    fixed
}

fn su_step(level: &Level, su: &Update, open: &BTreeSet<Cve>) -> Step {
    let closes: BTreeSet<Cve> = level
        .updates
        .iter()
        .take_while(|u| u.build <= su.build)
        .flat_map(|u| u.fixes.iter().copied())
        .filter(|c| open.contains(c))
        .collect();
    let mut reason = format!(
        "the latest SU for {}; SUs are cumulative, so it contains every earlier {} SU",
        level.cu, level.cu
    );
    if !closes.is_empty() {
        reason = format!("closes {}; {reason}", cve_list(&closes));
    }
    Step {
        kind: StepKind::Su,
        label: su.name(),
        target: Some(su.build),
        kb: su.kb,
        dotnet: None,
        requires_dotnet: Vec::new(),
        requires_build: Some(level.build),
        licence_switch: None,
        reason,
        prerequisite: format!(
            "{} ({}) installed; run the .msp elevated; reboot afterwards",
            level.cu, level.build
        ),
    }
}

fn stopgap_step(level: &Level, su: &Update, closes: &BTreeSet<Cve>) -> Step {
    let mut step = su_step(level, su, closes);
    step.reason = format!(
        "stop-gap until the CU upgrade: closes {} on {} only",
        cve_list(closes),
        level.cu
    );
    step
}

/// One move of the leapfrog search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Move {
    Cu(usize),
    DotNet(DotNet),
}

/// Steps from the standing's level to level `to`, leapfrogging .NET where needed.
fn upgrade_steps(
    cat: &Catalogue,
    standing: Standing<'_>,
    to: usize,
    open: &BTreeSet<Cve>,
    dotnet: Option<DotNet>,
    notes: &mut Vec<String>,
) -> Vec<Step> {
    let entry = standing.entry;
    let from = standing.level;
    let current = standing.level();
    let target = &entry.levels[to];
    let why = format!(
        "{} is the newest {} {}; {}",
        target.cu,
        entry.family,
        kind_word(target.kind),
        if standing.pending().is_empty() {
            format!("{} has no SU left to install", current.cu)
        } else {
            let unclosable = open
                .difference(&fixed_at_latest(cat, current))
                .copied()
                .collect();
            format!(
                "{}'s SUs do not close {}",
                current.cu,
                cve_list(&unclosable)
            )
        }
    );
    let Some(&newest_dotnet) = target.dotnet.last() else {
        return vec![level_step(cat, entry.family, target, why)];
    };
    let start = dotnet.or_else(|| current.dotnet.first().copied());
    if let (None, Some(assumed)) = (dotnet, start) {
        notes.push(format!(
            ".NET version not given: planned from .NET {assumed}, the oldest {} supports; \
             .NET steps are skipped on servers that already have that version or newer",
            current.cu
        ));
    }
    let moves = start.and_then(|dn| leapfrog(entry, from, to, dn));
    let Some(moves) = moves else {
        let mut steps = Vec::new();
        if start.is_none_or(|dn| dn < newest_dotnet) {
            notes.push(format!(
                "no supported .NET/CU leapfrog path is known from {}: install the newest .NET \
                 {} supports, then immediately the CU",
                current.cu, target.cu
            ));
            steps.push(dotnet_step(
                newest_dotnet,
                format!("{} needs .NET {}", target.cu, or_list(&target.dotnet)),
            ));
        }
        steps.push(level_step(cat, entry.family, target, why));
        return steps;
    };
    let mut steps = Vec::new();
    let mut at = from;
    for (n, mv) in moves.iter().enumerate() {
        match *mv {
            Move::DotNet(v) => {
                let next_cu = moves[n..].iter().find_map(|m| match m {
                    Move::Cu(j) => Some(&entry.levels[*j]),
                    Move::DotNet(_) => None,
                });
                let reason = match next_cu {
                    Some(next) => format!(
                        "{} needs .NET {}; {} supports .NET {v}, so it goes first",
                        next.cu,
                        or_list(&next.dotnet),
                        entry.levels[at].cu
                    ),
                    None => format!("{} supports .NET {v}", entry.levels[at].cu),
                };
                steps.push(dotnet_step(v, reason));
            }
            Move::Cu(j) => {
                let reason = if j == to {
                    why.clone()
                } else {
                    format!(
                        "leapfrog: {} is the newest CU that supports the .NET version in place",
                        entry.levels[j].cu
                    )
                };
                steps.push(level_step(cat, entry.family, &entry.levels[j], reason));
                at = j;
            }
        }
    }
    steps
}

/// Breadth-first search for the fewest CU/.NET moves from (`from`, `start`) to level `to`.
fn leapfrog(entry: &FamilyEntry, from: usize, to: usize, start: DotNet) -> Option<Vec<Move>> {
    type State = (usize, DotNet);
    let mut came_from: HashMap<State, (State, Move)> = HashMap::new();
    let mut queue = VecDeque::from([(from, start)]);
    while let Some(state @ (at, dn)) = queue.pop_front() {
        if at == to {
            let mut moves = Vec::new();
            let mut cursor = state;
            while let Some(&(prev, mv)) = came_from.get(&cursor) {
                moves.push(mv);
                cursor = prev;
            }
            moves.reverse();
            return Some(moves);
        }
        // Jump as far as possible first, then the newest .NET: ties resolve to fewer, bigger moves.
        let cu_moves = (at + 1..=to)
            .rev()
            .filter(|&j| entry.levels[j].dotnet.contains(&dn))
            .map(|j| ((j, dn), Move::Cu(j)));
        let dotnet_moves = entry.levels[at]
            .dotnet
            .iter()
            .rev()
            .filter(|&&v| v > dn)
            .map(|&v| ((at, v), Move::DotNet(v)));
        for (next, mv) in cu_moves.chain(dotnet_moves).collect::<Vec<_>>() {
            if next != (from, start) && !came_from.contains_key(&next) {
                came_from.insert(next, (state, mv));
                queue.push_back(next);
            }
        }
    }
    None
}

fn level_step(cat: &Catalogue, family: Family, level: &Level, reason: String) -> Step {
    let (kind, prerequisite) = match level.kind {
        LevelKind::Cu => {
            let switch = match cat.licence_switch(level) {
                LicenceSwitch::Plain(s) => s,
                LicenceSwitch::DiagnosticData(s) => s.join(" or "),
            };
            let dotnet = if level.dotnet.is_empty() {
                String::new()
            } else {
                format!(".NET {} installed; ", or_list(&level.dotnet))
            };
            (
                StepKind::Cu,
                format!(
                    "{dotnet}run <media>\\Setup.exe /Mode:Upgrade {switch} by absolute path; \
                     Schema/Enterprise Admin rights or /PrepareSchema and /PrepareAD done first; \
                     reboot afterwards"
                ),
            )
        }
        LevelKind::Ru => (
            StepKind::Ru,
            format!("{family} SP3 installed; run the rollup elevated; reboot afterwards"),
        ),
    };
    Step {
        kind,
        label: level.cu.clone(),
        target: Some(level.build),
        kb: level.kb,
        dotnet: None,
        requires_dotnet: level.dotnet.clone(),
        requires_build: None,
        licence_switch: (kind == StepKind::Cu).then(|| cat.licence_switch(level)),
        reason,
        prerequisite,
    }
}

fn dotnet_step(version: DotNet, reason: String) -> Step {
    Step {
        kind: StepKind::DotNet,
        label: format!(".NET {version}"),
        target: None,
        kb: None,
        dotnet: Some(version),
        requires_dotnet: Vec::new(),
        requires_build: None,
        licence_switch: None,
        reason,
        prerequisite: format!(
            "skip if .NET {version} or newer is installed; maintenance mode, Exchange services \
             stopped; reboot afterwards"
        ),
    }
}

fn kind_word(kind: LevelKind) -> &'static str {
    match kind {
        LevelKind::Cu => "CU",
        LevelKind::Ru => "update rollup",
    }
}

fn or_list(versions: &[DotNet]) -> String {
    let names: Vec<&str> = versions.iter().map(|v| v.as_str()).collect();
    names.join(" or ")
}

fn cve_list(cves: &BTreeSet<Cve>) -> String {
    let names: Vec<String> = cves.iter().map(Cve::to_string).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `exchange_update` writes is what the plan reads back, `display` included on the
    /// way out.
    #[test]
    fn a_step_reads_back_as_written() {
        let step = Step {
            kind: StepKind::Cu,
            label: "CU21".into(),
            target: Some(Build::new(15, 1, 2308, 8)),
            kb: Some("KB5003611".parse().unwrap()),
            dotnet: None,
            requires_dotnet: vec![DotNet::V4_8],
            requires_build: None,
            licence_switch: Some(LicenceSwitch::Plain(
                "/IAcceptExchangeServerLicenseTerms".into(),
            )),
            reason: "closes CVE-2021-34473".into(),
            prerequisite: String::new(),
        };
        let written = serde_json::to_value(&step).unwrap();
        let keys: Vec<&str> = written
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "display",
                "kind",
                "label",
                "target",
                "kb",
                "dotnet",
                "requires_dotnet",
                "requires_build",
                "licence_switch",
                "reason",
                "prerequisite"
            ]
        );
        assert_eq!(written["display"], "CU21 (needs .NET 4.8)");
        assert_eq!(written["kind"], "CU");
        assert_eq!(written["target"], "15.1.2308.8");
        assert_eq!(serde_json::from_value::<Step>(written).unwrap(), step);
    }
}
