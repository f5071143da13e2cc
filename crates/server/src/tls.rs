//! TLS with rustls and the aws-lc-rs provider: the server side, and HTTP clients that trust a
//! given CA (the lab's dev CA) or the system roots.

use crate::config::TlsFiles;
use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;
use std::path::Path;
use std::sync::Arc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A rustls server config from PEM files, with HTTP/2 and HTTP/1.1 offered by ALPN.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<RustlsConfig> {
    let cert_pem = std::fs::read(&files.cert)
        .with_context(|| format!("reading TLS certificate {}", files.cert.display()))?;
    let key_pem = std::fs::read(&files.key)
        .with_context(|| format!("reading TLS key {}", files.key.display()))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", files.cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no certificate",
        files.cert.display()
    );
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .with_context(|| format!("parsing {}", files.key.display()))?
        .with_context(|| format!("{} holds no private key", files.key.display()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(cfg)))
}

/// A rustls client config trusting `ca_file` if given, else the system roots.
pub fn client_config(ca_file: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading CA file {}", path.display()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                roots.add(cert.with_context(|| format!("parsing {}", path.display()))?)?;
            }
            anyhow::ensure!(!roots.is_empty(), "{} holds no certificate", path.display());
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// An HTTP client for talking to other servers: given trust, no redirects (SSRF), and
/// `timeout` for each whole request (connecting included), so a slow peer fails fast.
pub fn http_client(
    ca_file: Option<&Path>,
    timeout: std::time::Duration,
) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(client_config(ca_file)?)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()?)
}
