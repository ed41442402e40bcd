//! `salve approve PLAN --key KEYFILE --name NAME`: countersign a plan. The approval (name, public
//! key, time, signature over the plan digest) is appended to the plan file in place; the rest of
//! the file is unchanged, so its digest stays the same. With `--trusted DIR` the command then
//! checks the plan's approvals as `apply` will and says how many trusted approvals it has.

use std::path::PathBuf;

use crate::exit;
use crate::plan::render::duration;
use crate::plan::{KeyPair, Plan, PlanError, approve, verify};

/// Arguments of `salve approve`.
#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The plan file to approve (JSON, as written by salve).
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// Your private key (from `salve keygen`).
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    /// Your name as it should appear in the plan and the reports.
    #[arg(long, value_name = "NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub name: String,
    /// Afterwards, check the approvals against the public keys in this directory.
    #[arg(long, value_name = "DIR")]
    pub trusted: Option<PathBuf>,
}

pub fn run(args: ApproveArgs) -> u8 {
    match approve_file(&args) {
        Ok(()) => exit::OK,
        Err(e) => super::print_error(&e, exit::INVALID_INPUT),
    }
}

fn approve_file(args: &ApproveArgs) -> Result<(), PlanError> {
    let name = args.name.trim();
    let mut plan = Plan::load(&args.plan)?;
    let key = KeyPair::load(&args.key)?;
    let totals = &plan.totals;
    eprintln!(
        "plan {}: {} host(s), {} step(s), {} reboot(s), about {} of work",
        plan.digest(),
        totals.hosts,
        totals.steps,
        totals.reboots,
        duration(totals.estimated_seconds)
    );
    approve(&mut plan, &key, name, jiff::Timestamp::now())?;
    plan.save(&args.plan)?;
    println!("approved by {name}: {}", args.plan.display());
    if let Some(dir) = &args.trusted {
        let approvers = verify(&plan, dir, 0)?;
        println!(
            "{} trusted approval(s): {}",
            approvers.len(),
            approvers
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
