//! The HTTP client the demo uses to talk to the provider.
//!
//! reqwest is compiled without a rustls crypto provider (the workspace avoids ring), so the
//! client gets a preconfigured rustls `ClientConfig` on aws-lc-rs. Redirects are disabled: the
//! provider's URLs come from discovery, and following redirects from them would let a hostile
//! document steer requests elsewhere (SSRF).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::DemoError;

/// Builds the provider-facing HTTP client: rustls (aws-lc-rs), roots from `ca_file` or the
/// platform, no redirects, bounded timeouts.
pub(crate) async fn http_client(ca_file: Option<&Path>) -> Result<reqwest::Client, DemoError> {
    let roots = match ca_file {
        Some(path) => roots_from_pem_file(path).await?,
        None => native_roots(),
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    // reqwest does not set ALPN on a preconfigured config; offer what it can speak.
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("tenantd-demo/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

async fn roots_from_pem_file(path: &Path) -> Result<RootCertStore, DemoError> {
    let pem = tokio::fs::read(path)
        .await
        .map_err(|source| DemoError::CaFile {
            path: path.to_owned(),
            source,
        })?;
    roots_from_pem(&pem).map_err(|reason| DemoError::CaPem {
        path: path.to_owned(),
        reason,
    })
}

/// Every certificate in `pem` becomes a trust anchor; a file with none (or a broken one) is an
/// error rather than a silently empty trust store.
fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("not valid PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("contains no CERTIFICATE block".to_owned());
    }
    Ok(roots)
}

fn native_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for err in &found.errors {
        tracing::warn!(error = %err, "while loading the platform's CA certificates");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 {
        tracing::debug!(ignored, "platform CA certificates that rustls cannot use");
    }
    if added == 0 {
        tracing::warn!("no platform CA certificates found: HTTPS issuers will fail to verify");
    }
    roots
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn pem_with_a_ca_gives_one_root() {
        let pem = ca_pem();
        let roots = roots_from_pem(pem.as_bytes()).unwrap();
        assert_eq!(roots.len(), 1);
    }

    #[test]
    fn pem_without_certificates_is_refused() {
        let err = roots_from_pem(b"just text\n").err();
        assert_eq!(err.as_deref(), Some("contains no CERTIFICATE block"));
    }

    #[tokio::test]
    async fn missing_ca_file_is_a_config_error() {
        let err = http_client(Some(Path::new("/nonexistent/dev-ca.pem")))
            .await
            .err();
        assert!(matches!(err, Some(DemoError::CaFile { .. })), "{err:?}");
    }

    #[tokio::test]
    async fn client_builds_with_a_ca_file() {
        let dir = std::env::temp_dir().join(format!("tenantd-demo-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dev-ca.pem");
        std::fs::write(&path, ca_pem()).unwrap();
        let built = http_client(Some(&path)).await;
        let _ = std::fs::remove_dir_all(&dir);
        assert!(built.is_ok(), "{:?}", built.err());
    }
}
