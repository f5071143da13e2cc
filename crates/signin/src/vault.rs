//! Secrets at rest: the tenant's master key (`[secrets]`) and the [`Vault`] that seals the
//! secrets the store must read back in clear — signing keys, TOTP keys, the key authorization
//! codes are sealed with, the tenant's HMAC keys — with it (AES-256-GCM through aws-lc-rs). A
//! copy of the database without the key reveals none of them.
//!
//! A sealed value is `enc:v1:<key id>:<base64url(nonce || ciphertext || tag)>`, sealed for its
//! place (table and row), so it does not open anywhere else. The key id is the first four bytes
//! of the key's SHA-256, in hex: it names the key without revealing it, which is what lets a
//! rotation keep the previous key for opening while the current one seals.
//!
//! Where the key comes from: `master_key_file` or `master_key_env` in `[secrets]` (base64 of
//! 32 random bytes, as `tenantd secrets new-key` prints). Without a `[secrets]` section a SQLite
//! tenant keeps a generated key in a file beside its database (`<database>.key`, mode 0600): a
//! copy of the database file alone still reveals nothing, and the lab works with no set-up. A
//! PostgreSQL database is shared by replicas and backed up on its own, so it needs the section.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::aead::NONCE_LEN;
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use protocol::sealed::{SECRET_LEN, SealingKey};
use store::{Opened, SealError, Sealer, Store, StoreError};

use crate::config::Config;

/// What every sealed value starts with.
const ENVELOPE: &str = "enc:v1:";

/// A master key: 32 bytes, named by its id.
pub struct MasterKey {
    id: String,
    key: SealingKey,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

/// A master key's text is not base64 of 32 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("base64 of {SECRET_LEN} random bytes (as `tenantd secrets new-key` prints)")]
pub struct BadMasterKey;

impl MasterKey {
    /// The key written as `text`: base64 (standard or URL-safe, padded or not) of 32 bytes,
    /// surrounding whitespace ignored.
    pub fn from_text(text: &str) -> Result<MasterKey, BadMasterKey> {
        let text = text.trim();
        let bytes = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or(BadMasterKey)?;
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<MasterKey, BadMasterKey> {
        let key = SealingKey::new(bytes).map_err(|_| BadMasterKey)?;
        let hash = digest::digest(&digest::SHA256, bytes);
        let id = hash.as_ref()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(MasterKey { id, key })
    }

    /// A new random key, as text for a key file.
    pub fn generate() -> String {
        STANDARD.encode(crate::secrets::random_bytes::<SECRET_LEN>())
    }

    /// The key's id (what sealed values name it by).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The master keys: the current one seals and opens; previous ones (kept during a rotation)
/// only open.
#[derive(Debug)]
pub struct Vault {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Vault {
    /// The vault with `current` sealing and `previous` still opening.
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Vault {
        Vault { current, previous }
    }

    /// A vault with a random key that lives as long as the process: for a database that does
    /// too (`sqlite::memory:`), and tests.
    pub fn ephemeral() -> Vault {
        let bytes = crate::secrets::random_bytes::<SECRET_LEN>();
        match MasterKey::from_bytes(&bytes) {
            Ok(current) => Vault::new(current, Vec::new()),
            // 32 bytes always make a key; aws-lc refusing one is unrecoverable.
            Err(_) => std::process::abort(),
        }
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        self.current.id()
    }
}

impl Sealer for Vault {
    fn seal(&self, place: &str, plaintext: &str) -> String {
        let nonce = crate::secrets::random_bytes::<NONCE_LEN>();
        let sealed = self.current.key.seal(nonce, place, plaintext.as_bytes());
        format!("{ENVELOPE}{}:{sealed}", self.current.id)
    }

    fn open(&self, place: &str, stored: &str) -> Result<Opened, SealError> {
        let rest = stored.strip_prefix(ENVELOPE).ok_or(SealError::Clear)?;
        let (id, sealed) = rest.split_once(':').ok_or(SealError::Altered)?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let plaintext = key.key.open(place, sealed).ok_or(SealError::Altered)?;
        Ok(Opened {
            plaintext: String::from_utf8(plaintext).map_err(|_| SealError::Altered)?,
            current: key.id == self.current.id,
        })
    }

    fn current_prefix(&self) -> String {
        format!("{ENVELOPE}{}:", self.current.id)
    }
}

/// The master key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Reading or creating the key file beside a SQLite database failed.
    #[error("master key file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The key file beside a SQLite database holds no key.
    #[error("master key file {}: expected {BadMasterKey}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
    },
    /// A PostgreSQL database and no `[secrets]` section (the config check refuses this).
    #[error("[secrets]: a PostgreSQL database needs master_key_file or master_key_env")]
    NoKey,
    /// Opening the database or resealing its secrets failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The vault for a tenant: the configured master keys, else the key beside the SQLite file
/// (created on first start), else an ephemeral one for an in-memory database.
pub fn for_config(config: &Config) -> Result<Arc<Vault>, VaultError> {
    if let Some(vault) = &config.secrets {
        return Ok(Arc::clone(vault));
    }
    let url = &config.database_url;
    if !url.starts_with("sqlite:") {
        return Err(VaultError::NoKey);
    }
    match store::sqlite_file(url)? {
        None => Ok(Arc::new(Vault::ephemeral())),
        Some(db) => {
            let mut key = db.into_os_string();
            key.push(".key");
            key_file(Path::new(&key)).map(Arc::new)
        }
    }
}

/// Writes a new master key to `path`, a new file only its owner may read; an existing file
/// is left alone ([`std::io::ErrorKind::AlreadyExists`]).
pub fn create_key_file(path: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(format!("{}\n", MasterKey::generate()).as_bytes())?;
    file.sync_all()
}

/// The vault of the master key in `path`, created (mode 0600, never overwritten) if there is
/// none.
pub fn key_file(path: &Path) -> Result<Vault, VaultError> {
    let file_error = |source| VaultError::File {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(file_error)?;
    }
    match create_key_file(path) {
        Ok(()) => {
            tracing::info!(file = %path.display(), "generated the master key secrets at rest are sealed with; back it up apart from the database");
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(file_error(e)),
    }
    let text = std::fs::read_to_string(path).map_err(file_error)?;
    let key = MasterKey::from_text(&text).map_err(|_| VaultError::BadFile {
        path: path.to_owned(),
    })?;
    Ok(Vault::new(key, Vec::new()))
}

/// Opens the tenant's store with its vault and reseals every secret not yet sealed under the
/// current master key (written in clear by an earlier version, or under a previous key).
pub async fn open_store(config: &Config) -> Result<Store, VaultError> {
    let vault = for_config(config)?;
    let store = Store::connect(&config.database_url, vault.clone()).await?;
    let resealed = store.reseal_secrets().await?;
    let total: u64 = resealed.iter().map(|(_, n)| n).sum();
    if total > 0 {
        tracing::info!(
            key = vault.current_id(),
            resealed = ?resealed,
            "sealed secrets under the current master key"
        );
    }
    Ok(store)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(b: u8) -> MasterKey {
        MasterKey::from_bytes(&[b; SECRET_LEN]).unwrap()
    }

    #[test]
    fn sealed_values_open_in_their_place_only() {
        let vault = Vault::new(key(1), Vec::new());
        let sealed = vault.seal("signing_keys/k1", "pem");
        assert!(sealed.starts_with(&vault.current_prefix()));
        assert!(!sealed.contains("pem"));
        let opened = vault.open("signing_keys/k1", &sealed).unwrap();
        assert_eq!(opened.plaintext, "pem");
        assert!(opened.current);
        assert_eq!(
            vault.open("signing_keys/k2", &sealed).unwrap_err(),
            SealError::Altered
        );
        assert_eq!(
            vault.open("signing_keys/k1", "pem").unwrap_err(),
            SealError::Clear
        );
        assert_ne!(vault.seal("p", "same"), vault.seal("p", "same"), "nonces");
    }

    #[test]
    fn previous_keys_open_but_do_not_seal() {
        let old = Vault::new(key(1), Vec::new());
        let sealed = old.seal("p", "secret");
        let rotated = Vault::new(key(2), vec![key(1)]);
        let opened = rotated.open("p", &sealed).unwrap();
        assert_eq!(opened.plaintext, "secret");
        assert!(!opened.current);
        assert!(
            rotated
                .seal("p", "x")
                .starts_with(&format!("enc:v1:{}:", key(2).id()))
        );
        let without = Vault::new(key(2), Vec::new());
        assert_eq!(
            without.open("p", &sealed).unwrap_err(),
            SealError::UnknownKey(key(1).id().to_owned())
        );
    }

    #[test]
    fn key_text_is_base64_of_32_bytes() {
        let text = MasterKey::generate();
        let a = MasterKey::from_text(&format!("  {text}\n")).unwrap();
        let b = MasterKey::from_text(&text).unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id().len(), 8);
        let url_safe = URL_SAFE_NO_PAD.encode([7u8; SECRET_LEN]);
        assert_eq!(MasterKey::from_text(&url_safe).unwrap().id(), key(7).id());
        assert!(MasterKey::from_text("").is_err());
        assert!(MasterKey::from_text(&STANDARD.encode([1u8; 16])).is_err());
        assert!(MasterKey::from_text("not base64!").is_err());
    }

    #[test]
    fn the_key_beside_a_database_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("tenantd-vault-{}", uuid::Uuid::new_v4()));
        let path = dir.join("sub").join("t.db.key");
        let first = key_file(&path).unwrap();
        let again = key_file(&path).unwrap();
        assert_eq!(first.current_id(), again.current_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "junk").unwrap();
        assert!(matches!(key_file(&path), Err(VaultError::BadFile { .. })));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
