//! `salve catalogue status|show|verify|update|sign`: which build/CVE catalogue salve uses, how
//! old its data is, and installing a newer signed one (see [`crate::app::catalogue`]).

use std::path::PathBuf;

use crate::app::catalogue::{self as store, Activation};
use crate::exchange::catalogue::{self, Catalogue};
use crate::exit;

/// Arguments of `salve catalogue`.
#[derive(Debug, clap::Args)]
pub struct CatalogueArgs {
    #[command(subcommand)]
    command: CatalogueCommand,
}

#[derive(Debug, clap::Subcommand)]
enum CatalogueCommand {
    /// The catalogue in use, where it comes from, and whether its data is older than 45 days.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every family's builds, CVEs and newest build, and the declared mitigations.
    Show,
    /// Check a catalogue file and its FILE.sig without installing it.
    Verify {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Install a newer signed catalogue into the state directory.
    Update {
        /// The catalogue file or an http(s) URL; its signature is read from FILE.sig beside it.
        #[arg(long, value_name = "FILE|URL")]
        from: String,
    },
    /// Sign a catalogue file (writes FILE.sig) with an Ed25519 key from `salve keygen`.
    Sign {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The private key (PKCS#8 PEM).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
    },
}

/// Make an installed catalogue the one every command uses; warn when it is refused.
pub fn activate_installed() {
    if let Err(e) = store::activate_installed() {
        let compiled =
            catalogue::compiled_in().map_or_else(|_| "?".to_owned(), |c| c.version.clone());
        eprintln!(
            "warning: {}; using the compiled-in catalogue {compiled}",
            crate::error_chain::one_line(&e)
        );
    }
}

pub fn run(args: CatalogueArgs) -> u8 {
    match args.command {
        CatalogueCommand::Status { json } => status(json),
        CatalogueCommand::Show => show(),
        CatalogueCommand::Verify { file } => match store::verify_file(&file) {
            Ok(v) => {
                println!(
                    "{}: valid, version {} (data as of {}), {} builds, signed by the {} key {}",
                    v.path.display(),
                    v.catalogue.version,
                    v.catalogue.as_of,
                    v.catalogue.build_count(),
                    v.signer.0,
                    v.signer.1
                );
                exit::OK
            }
            Err(e) => super::print_error(&e, exit::INVALID_INPUT),
        },
        CatalogueCommand::Update { from } => match store::update_from(&from) {
            Ok(u) => {
                println!(
                    "installed catalogue {} (was {}) from {} at {}, signed by the {} key {}",
                    u.to,
                    u.from,
                    u.source,
                    u.path.display(),
                    u.signer.0,
                    u.signer.1
                );
                exit::OK
            }
            Err(e) => super::print_error(&e, exit::INVALID_INPUT),
        },
        CatalogueCommand::Sign { file, key } => match store::sign(&file, &key) {
            Ok(sig) => {
                println!("wrote {}", sig.display());
                exit::OK
            }
            Err(e) => super::print_error(&e, exit::INVALID_INPUT),
        },
    }
}

fn in_use() -> Result<(&'static Catalogue, String), u8> {
    let cat = catalogue::catalogue().map_err(|e| super::print_error(e, exit::INTERNAL))?;
    let source = match store::activate_installed() {
        Ok(Activation::Installed { path, .. }) => path.display().to_string(),
        Ok(Activation::Superseded { version, path }) => format!(
            "compiled-in (the installed {version} at {} is not newer)",
            path.display()
        ),
        Ok(Activation::None) | Err(_) => "compiled-in".to_owned(),
    };
    Ok((cat, source))
}

fn status(json: bool) -> u8 {
    let (cat, source) = match in_use() {
        Ok(found) => found,
        Err(code) => return code,
    };
    let s = store::status(cat, source, crate::exchange::support::today_utc());
    if json {
        return match serde_json::to_string(&s) {
            Ok(line) => {
                println!("{line}");
                exit::OK
            }
            Err(e) => super::print_error(&e, exit::INTERNAL),
        };
    }
    println!(
        "catalogue {} ({} builds), data as of {}, {} days old",
        s.version, s.builds, s.as_of, s.age_days
    );
    println!("source:    {}", s.source);
    for f in &s.families {
        println!(
            "  {:<14} {:>4} builds, {:>4} CVEs, newest {}",
            f.family, f.builds, f.cves, f.newest
        );
    }
    if s.stale {
        println!(
            "warning: the data is older than {} days and Microsoft ships security updates monthly: \
             get a newer signed catalogue and run `salve catalogue update --from FILE`",
            store::STALE_AFTER_DAYS
        );
    }
    exit::OK
}

fn show() -> u8 {
    let (cat, source) = match in_use() {
        Ok(found) => found,
        Err(code) => return code,
    };
    println!(
        "catalogue {} (data as of {}; {source})",
        cat.version, cat.as_of
    );
    for family in cat.families() {
        println!("\n{}", family.family);
        for level in &family.levels {
            let sus: Vec<String> = level
                .updates
                .iter()
                .map(|u| format!("{} {}", u.su, u.build))
                .collect();
            println!(
                "  {:<9} {:<14} {}  {}",
                level.cu,
                level.build.to_string(),
                level.released,
                sus.join(", ")
            );
        }
    }
    println!("\nmitigations");
    for m in &cat.mitigations {
        let cves: Vec<String> = m.cves.iter().map(ToString::to_string).collect();
        let rules: Vec<&str> = m.rules.iter().map(|r| r.name.as_str()).collect();
        println!(
            "  {} ({}) for {}: rules {}; remove: {:?}",
            m.id,
            m.eems_id.as_deref().unwrap_or("no EEMS id"),
            cves.join(", "),
            rules.join(", "),
            m.remove
        );
    }
    exit::OK
}
