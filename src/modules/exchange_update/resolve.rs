//! Resolving an explicit `kb:` or `cu:` against the build catalogue compiled into salve: the
//! step it stands for on this host's CU, or why there is none (an SU for another CU, a label
//! the catalogue does not know).

use crate::exchange::build::Build;
use crate::exchange::catalogue::{Catalogue, FamilyEntry, Level};
use crate::exchange::ids::{Kb, KbParseError};
use crate::exchange::path::{Step, StepKind};

/// Why an explicit update cannot be resolved for this host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Kb(#[from] KbParseError),
    #[error("{build} is not a build of a catalogued Exchange family")]
    NoFamily { build: Build },
    #[error("{build} is older than every catalogued {family}")]
    OlderThanCatalogue { build: Build, family: String },
    #[error("{kb} is not a catalogued SU for {family}")]
    NotAnSu { kb: Kb, family: String },
    #[error(
        "refusing {kb}: this server runs {family} {cu} ({build}) and {kb} is only for \
         {elsewhere}; an SU installs on its own CU only"
    )]
    SuForOtherCu {
        kb: Kb,
        family: String,
        cu: String,
        build: Build,
        /// The CUs the KB is for, e.g. `CU9 (15.2.858.5)`.
        elsewhere: String,
    },
    #[error("{cu} is not a catalogued {family} CU")]
    NotACu { cu: String, family: String },
}

/// The SU step for `kb` on the host's CU, `None` when already installed; an error naming the
/// CUs the KB is for when the host's CU has no such SU.
pub(super) fn explicit_su(
    cat: &Catalogue,
    build: Build,
    kb: &str,
) -> Result<Option<Step>, ResolveError> {
    let kb: Kb = kb.parse()?;
    let entry = family_entry(cat, build)?;
    let level = entry
        .levels
        .iter()
        .rev()
        .find(|l| l.build <= build)
        .ok_or_else(|| ResolveError::OlderThanCatalogue {
            build,
            family: entry.family.to_string(),
        })?;
    let Some(su) = level.updates.iter().find(|u| u.kb == Some(kb)) else {
        let elsewhere: Vec<String> = entry
            .levels
            .iter()
            .filter(|l| l.updates.iter().any(|u| u.kb == Some(kb)))
            .map(|l| format!("{} ({})", l.cu, l.build))
            .collect();
        return Err(if elsewhere.is_empty() {
            ResolveError::NotAnSu {
                kb,
                family: entry.family.to_string(),
            }
        } else {
            ResolveError::SuForOtherCu {
                kb,
                family: entry.family.short().to_string(),
                cu: level.cu.clone(),
                build,
                elsewhere: elsewhere.join(", "),
            }
        });
    };
    if build >= su.build {
        return Ok(None);
    }
    Ok(Some(Step {
        kind: StepKind::Su,
        label: kb.to_string(),
        target: Some(su.build),
        kb: Some(kb),
        dotnet: None,
        requires_dotnet: Vec::new(),
        requires_build: Some(level.build),
        licence_switch: None,
        reason: format!("asked for {kb} on {}", level.cu),
        prerequisite: format!("{} ({}) installed", level.cu, level.build),
    }))
}

/// The CU step for label `cu` in the host's family, `None` when the host is at or past it.
pub(super) fn explicit_cu(
    cat: &Catalogue,
    build: Build,
    cu: &str,
) -> Result<Option<Step>, ResolveError> {
    let entry = family_entry(cat, build)?;
    let level = entry
        .levels
        .iter()
        .find(|l| l.cu.eq_ignore_ascii_case(cu))
        .ok_or_else(|| ResolveError::NotACu {
            cu: cu.to_string(),
            family: entry.family.to_string(),
        })?;
    if build >= level.build {
        return Ok(None);
    }
    Ok(Some(Step {
        kind: StepKind::Cu,
        label: level.cu.clone(),
        target: Some(level.build),
        kb: level.kb,
        dotnet: None,
        requires_dotnet: level.dotnet.clone(),
        requires_build: None,
        licence_switch: Some(cat.licence_switch(level)),
        reason: format!("asked for {}", level.cu),
        prerequisite: String::new(),
    }))
}

fn family_entry(cat: &Catalogue, build: Build) -> Result<&FamilyEntry, ResolveError> {
    build
        .family()
        .and_then(|f| cat.family(f))
        .ok_or(ResolveError::NoFamily { build })
}

/// The catalogued CU whose base build is `build`.
pub(super) fn level_at(cat: &Catalogue, build: Build) -> Option<&Level> {
    let entry = cat.family(build.family()?)?;
    entry.levels.iter().find(|l| l.build == build)
}

/// The CU label (`CU8`) of the CU at `base`.
pub(super) fn cu_label(cat: &Catalogue, base: Build) -> Option<String> {
    level_at(cat, base).map(|l| l.cu.clone())
}
