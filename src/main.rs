//! The `salve` binary: parse arguments, hand over to the library, exit with its code.

fn main() -> std::process::ExitCode {
    salve::cli::main()
}
