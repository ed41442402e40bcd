//! `salve assess`: offline answer to "what is this Exchange build, which CVEs is it open to, is
//! it still supported, and what is the shortest supported path to the newest SU its line can
//! take?".
//!
//! Human output is a short block per build; `--json` prints one JSON object per build, one per
//! line (JSON Lines), in argument order.

use std::fmt::Write as _;
use std::io::Write as _;

use crate::exchange::assess::{Assessment, Facts, assess};
use crate::exchange::build::Build;
use crate::exchange::catalogue::catalogue;
use crate::exchange::dotnet::DotNet;
use crate::exchange::ids::Kb;
use crate::exchange::path::Route;
use crate::exchange::protection::ProtectionState;

/// Arguments of `salve assess`.
#[derive(Debug, clap::Args)]
pub struct AssessArgs {
    /// Exchange builds to assess, short (15.1.2176.9) or long (15.01.2176.009) form.
    #[arg(value_name = "BUILD")]
    builds: Vec<String>,
    /// Print one JSON object per build, one per line.
    #[arg(long)]
    json: bool,
    /// SU KBs the server's installed-updates registry lists (repeat or comma-separate); used to
    /// confirm builds where sources disagree. Applies to every BUILD given.
    #[arg(long = "installed-kb", value_name = "KB", value_delimiter = ',')]
    installed_kb: Vec<String>,
    /// Installed .NET Framework version (4.8) or its Release registry value (528040); plans
    /// .NET steps from it instead of assuming the oldest version the current CU supports.
    #[arg(long, value_name = "VERSION")]
    dotnet: Option<String>,
    /// Judge the support state on this day (YYYY-MM-DD) instead of today.
    #[arg(long, value_name = "DATE")]
    on: Option<String>,
}

/// Bad command-line input, naming the argument.
#[derive(Debug, thiserror::Error)]
enum InputError {
    #[error("no BUILD given (e.g. `salve assess 15.1.2176.9`)")]
    NoBuild,
    #[error("invalid BUILD argument `{arg}`")]
    Build {
        arg: String,
        #[source]
        source: crate::exchange::build::BuildParseError,
    },
    #[error("invalid --installed-kb value")]
    Kb(#[source] crate::exchange::ids::KbParseError),
    #[error("invalid --dotnet value")]
    DotNet(#[source] crate::exchange::dotnet::DotNetParseError),
    #[error("invalid --on value `{arg}` (expected a day such as 2026-12-07)")]
    On {
        arg: String,
        #[source]
        source: jiff::Error,
    },
}

pub fn run(args: AssessArgs) -> u8 {
    let (builds, facts) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("error: {}", crate::error_chain::one_line(&e));
            return crate::exit::INVALID_INPUT;
        }
    };
    let cat = match catalogue() {
        Ok(cat) => cat,
        Err(e) => {
            eprintln!("error: {e}");
            return crate::exit::INTERNAL;
        }
    };
    let mut out = String::new();
    for (i, build) in builds.into_iter().enumerate() {
        let assessment = assess(cat, build, &facts);
        if args.json {
            match serde_json::to_string(&assessment) {
                Ok(line) => {
                    out.push_str(&line);
                    out.push('\n');
                }
                Err(e) => {
                    eprintln!("error: cannot encode the assessment as JSON: {e}");
                    return crate::exit::INTERNAL;
                }
            }
        } else {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&render(&assessment));
        }
    }
    if !args.json {
        let _ = writeln!(
            out,
            "\ncatalogue {} (data as of {}; `salve catalogue status` says whether it is current)",
            cat.version, cat.as_of
        );
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return crate::exit::OK;
        }
        eprintln!("error: cannot write to stdout: {e}");
        return crate::exit::INTERNAL;
    }
    crate::exit::OK
}

fn parse(args: &AssessArgs) -> Result<(Vec<Build>, Facts), InputError> {
    if args.builds.is_empty() {
        return Err(InputError::NoBuild);
    }
    let builds = args
        .builds
        .iter()
        .map(|arg| {
            arg.parse().map_err(|source| InputError::Build {
                arg: arg.clone(),
                source,
            })
        })
        .collect::<Result<Vec<Build>, _>>()?;
    let installed_kbs = if args.installed_kb.is_empty() {
        None
    } else {
        let kbs = args
            .installed_kb
            .iter()
            .map(|k| k.trim().parse::<Kb>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(InputError::Kb)?;
        Some(kbs)
    };
    let dotnet = args
        .dotnet
        .as_deref()
        .map(str::parse::<DotNet>)
        .transpose()
        .map_err(InputError::DotNet)?;
    let today = match &args.on {
        Some(arg) => arg.parse().map_err(|source| InputError::On {
            arg: arg.clone(),
            source,
        })?,
        None => crate::exchange::support::today_utc(),
    };
    Ok((
        builds,
        Facts {
            installed_kbs,
            dotnet,
            today: Some(today),
            ..Facts::default()
        },
    ))
}

/// The human block for one assessment.
fn render(a: &Assessment) -> String {
    let mut s = String::new();
    let what = match (&a.family, &a.cu) {
        (Some(f), Some(cu)) => format!("{f} {cu}"),
        (Some(f), None) => format!("{f}, CU not known"),
        (None, _) => "not a supported Exchange version".to_owned(),
    };
    let su = match a.su_kb {
        Some(kb) => format!(", SU {kb}"),
        None if a.cu.is_some() => ", no SU".to_owned(),
        None => String::new(),
    };
    let known = if !a.known {
        " (not in the catalogue)"
    } else if !a.exact {
        " (between catalogued builds)"
    } else {
        ""
    };
    let _ = writeln!(s, "{}  {what}{su}{known}", a.build);
    let open: Vec<String> = a.open_cves.iter().map(ToString::to_string).collect();
    let open = match open.len() {
        0 if !a.known => {
            "none known: the build is not in the catalogue, so the answer is unknown".to_owned()
        }
        0 => "none".to_owned(),
        n => format!("{n}: {}", open.join(", ")),
    };
    let _ = writeln!(s, "  open CVEs:   {open}");
    if !a.mitigated_cves.is_empty() {
        let list: Vec<String> = a.mitigated_cves.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            s,
            "  mitigated:   {} (until the fix is installed)",
            list.join(", ")
        );
    }
    let yes_no = |v: bool| if v { "vulnerable" } else { "not vulnerable" };
    let _ = writeln!(
        s,
        "  ProxyLogon:  {}; ProxyShell: {}",
        yes_no(a.proxylogon_vulnerable),
        yes_no(a.proxyshell_vulnerable)
    );
    if let Some(support) = &a.support {
        let _ = writeln!(s, "  support:     {}", support.detail);
    }
    if let Some(next) = &a.successor {
        let _ = writeln!(s, "  next line:   {next}");
    }
    let mut unknown: Vec<(&str, Vec<String>)> = Vec::new();
    for p in &a.protections {
        match p.state {
            ProtectionState::On => {}
            ProtectionState::Off => {
                let _ = writeln!(
                    s,
                    "  config:      {} OPEN: {}; fix: {}",
                    p.cve,
                    p.reason.as_deref().unwrap_or("protection off"),
                    p.fix
                );
            }
            ProtectionState::Unknown => match unknown.iter_mut().find(|(n, _)| *n == p.needs) {
                Some((_, cves)) => cves.push(p.cve.to_string()),
                None => unknown.push((&p.needs, vec![p.cve.to_string()])),
            },
        }
    }
    for (needs, cves) in unknown {
        let _ = writeln!(
            s,
            "  check:       {} (fixed in code): {needs}",
            cves.join(", ")
        );
    }
    for m in &a.mitigations {
        let _ = writeln!(
            s,
            "  mitigation:  {} ({}): {}",
            m.id,
            m.eems_id.as_deref().unwrap_or("no EEMS id"),
            m.detail
        );
    }
    if let Some(eems) = a.eems.as_ref().filter(|e| e.available && !e.receives_new) {
        let _ = writeln!(s, "  EEMS:        {}", eems.detail);
    }
    let route = match a.route {
        Route::None => "nothing to install",
        Route::Su => "an SU for this CU fixes it",
        Route::CuUpgrade => "CU upgrade needed first",
        Route::Unknown => "unknown build: no path planned",
    };
    let _ = writeln!(s, "  route:       {route}");
    if !a.path.steps.is_empty() {
        let _ = writeln!(s, "  path:        {}", a.path);
        for (n, step) in a.path.steps.iter().enumerate() {
            let target = step.target.map(|b| format!(" → {b}")).unwrap_or_default();
            let _ = writeln!(s, "    {}. {step}{target}: {}", n + 1, step.reason);
        }
    }
    if let Some(stopgap) = &a.stopgap {
        let _ = writeln!(s, "  stop-gap:    {stopgap}: {}", stopgap.reason);
    }
    for note in &a.notes {
        let _ = writeln!(s, "  note:        {note}");
    }
    s
}
