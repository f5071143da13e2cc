//! `tenantd certs`: a development CA and a leaf certificate for `localhost`, `127.0.0.1` and
//! `::1`, written as PEM files. For labs and CI only; never for production.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use std::path::{Path, PathBuf};

/// The files `tenantd certs` writes.
#[derive(Debug, Clone)]
pub struct DevCerts {
    /// CA certificate to trust.
    pub ca: PathBuf,
    /// CA private key.
    pub ca_key: PathBuf,
    /// Leaf certificate.
    pub cert: PathBuf,
    /// Leaf private key.
    pub key: PathBuf,
}

impl DevCerts {
    /// The file names inside `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca: dir.join("dev-ca.pem"),
            ca_key: dir.join("dev-ca-key.pem"),
            cert: dir.join("localhost.pem"),
            key: dir.join("localhost-key.pem"),
        }
    }

    /// Whether all four files exist.
    pub fn exist(&self) -> bool {
        [&self.ca, &self.ca_key, &self.cert, &self.key]
            .iter()
            .all(|p| p.exists())
    }
}

/// Write a new CA and leaf into `dir` (created if needed). Existing files are replaced only when
/// `force` is set or one of them is missing. Returns whether new files were written.
pub fn ensure(dir: &Path, force: bool) -> anyhow::Result<(DevCerts, bool)> {
    let files = DevCerts::in_dir(dir);
    if files.exist() && !force {
        return Ok((files, false));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let now = time::OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "tenantd development CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "tenantd lab");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(3650);
    let ca_cert = ca.self_signed(&ca_key)?;

    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut leaf = CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now - time::Duration::days(1);
    leaf.not_after = now + time::Duration::days(825);
    let issuer = Issuer::new(ca, &ca_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

    write(&files.ca, &ca_cert.pem(), false)?;
    write(&files.ca_key, &ca_key.serialize_pem(), true)?;
    write(&files.cert, &leaf_cert.pem(), false)?;
    write(&files.key, &leaf_key.serialize_pem(), true)?;
    Ok((files, true))
}

fn write(path: &Path, contents: &str, private: bool) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    Ok(())
}
