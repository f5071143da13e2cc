//! The `tenantd` binary.

fn main() -> std::process::ExitCode {
    tenantd::cli::main()
}
