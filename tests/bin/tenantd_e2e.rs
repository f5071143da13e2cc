//! The `tenantd` binary, built with the end-to-end tests so they can run tenants as separate
//! processes (`tenantd serve`) without depending on a separate build step.

fn main() -> std::process::ExitCode {
    tenantd::cli::main()
}
