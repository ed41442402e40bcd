//! `salve keygen --out NAME`: make an Ed25519 key pair for approving plans. `NAME.key` is the
//! private key (PKCS#8 PEM, owner-only); `NAME.pub` is the public key to hand to whoever keeps
//! the trusted-keys directory. Existing files are never overwritten.

use std::path::PathBuf;

use crate::exit;
use crate::plan::KeyPair;
use crate::plan::sign::fingerprint;

/// Arguments of `salve keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Path and base name of the key files: writes NAME.key and NAME.pub.
    #[arg(long, value_name = "NAME")]
    pub out: PathBuf,
}

pub fn run(args: KeygenArgs) -> u8 {
    let pair = match KeyPair::generate() {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("error: no random numbers from the operating system: {e}");
            return exit::INTERNAL;
        }
    };
    match pair.save(&args.out) {
        Ok((key, public)) => {
            println!("private key: {} (keep it secret)", key.display());
            println!("public key:  {}", public.display());
            println!("fingerprint: {}", fingerprint(&pair.public()));
            exit::OK
        }
        Err(e) => super::print_error(&e, exit::INVALID_INPUT),
    }
}
