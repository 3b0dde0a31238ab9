//! The `cloak-api` binary.

fn main() -> std::process::ExitCode {
    cloak_api::cli::main()
}
