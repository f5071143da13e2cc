//! The `tenantd` binary's crate: the command-line interface (`cli`), `tenantd lab` (`lab`: two
//! tenants and the demo app on loopback) and development TLS certificates (`certs`). The
//! running tenant itself (handlers, pages, sessions, TLS) lives in `tenantd-server`.

pub mod certs;
pub mod cli;
pub mod lab;
