//! The files a config names, checked with it: the TLS certificate and key, the partners' CA
//! files, and (through [`Prepared::read`]) the intel and policy files. Every problem is
//! reported; nothing is created.

use super::{FileCheck, NamedFiles, Problem};
use crate::protection::Prepared;
use std::path::Path;

impl NamedFiles {
    /// Checks the files; the intel and file policies, read, when `[risk]` was usable and they
    /// are all good.
    pub(super) fn check(&self, check: FileCheck, problems: &mut Vec<Problem>) -> Option<Prepared> {
        if check == FileCheck::All {
            if let Some(tls) = &self.tls {
                pem_file("server.tls.cert", &tls.cert, Pem::Certificates, problems);
                pem_file("server.tls.key", &tls.key, Pem::PrivateKey, problems);
            }
            for (key, path) in &self.ca_files {
                pem_file(key, path, Pem::Certificates, problems);
            }
        }
        match Prepared::read(self.risk.as_ref()?) {
            Ok(prepared) => Some(prepared),
            Err(found) => {
                problems.extend(found);
                None
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Pem {
    Certificates,
    PrivateKey,
}

/// A readable PEM file with at least one certificate, or a private key.
fn pem_file(key: &str, path: &Path, want: Pem, problems: &mut Vec<Problem>) {
    let file = path.display().to_string();
    let what = match want {
        Pem::Certificates => "a PEM file of certificates",
        Pem::PrivateKey => "a PEM file with a private key",
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            let hint = if key.starts_with("server.tls") {
                "; `tenantd certs` writes dev ones"
            } else {
                ""
            };
            problems.push(Problem::new(
                file,
                key,
                format!("{what}, but it cannot be read ({e}){hint}"),
            ));
            return;
        }
    };
    let found = match want {
        Pem::Certificates => rustls_pemfile::certs(&mut bytes.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map(|certs| !certs.is_empty()),
        Pem::PrivateKey => rustls_pemfile::private_key(&mut bytes.as_slice()).map(|k| k.is_some()),
    };
    match found {
        Ok(true) => {}
        Ok(false) => problems.push(Problem::new(file, key, format!("{what}, found none"))),
        Err(e) => problems.push(Problem::new(
            file,
            key,
            format!("{what}, but it is not valid PEM ({e})"),
        )),
    }
}
