//! The `tenantd` binary.

fn main() -> std::process::ExitCode {
    tenantd_server::cli::main()
}
