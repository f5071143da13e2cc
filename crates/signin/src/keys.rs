//! Signing keys: created on first start (one ES256, one RS256), loaded from the store, rotated
//! by `tenantd keys rotate`. A rotated-in key is published at once and signs after
//! [`PROPAGATION_SECS`]; a rotated-out key stays published and accepted until every JWT it
//! signed has expired (the longest of the ID and access token lifetimes).

use protocol::jwt::{KeySet, SigningAlg, SigningKey};
use store::{SigningKeyRecord, Store};

/// Errors managing keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Key generation failed.
    #[error("key generation failed: {0}")]
    Generate(String),
    /// A stored key could not be loaded.
    #[error("stored key {kid} ({alg}) is unusable: {reason}")]
    Load {
        /// Key id.
        kid: String,
        /// Algorithm.
        alg: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Generate a new PKCS#8 PEM private key for `alg`.
pub fn generate_pem(alg: SigningAlg) -> Result<String, KeyError> {
    let pair = match alg {
        SigningAlg::ES256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        SigningAlg::RS256 => {
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        }
    }
    .map_err(|e| KeyError::Generate(e.to_string()))?;
    Ok(pair.serialize_pem())
}

fn record(alg: SigningAlg, now: i64) -> Result<SigningKeyRecord, KeyError> {
    let pem = generate_pem(alg)?;
    let key = SigningKey::from_pkcs8_pem(alg, &pem, now, None)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    Ok(SigningKeyRecord {
        kid: key.kid,
        alg: alg.as_str().to_owned(),
        private_key_pem: pem,
        created_at: now,
        retired_at: None,
    })
}

/// Make sure there is an active key for each algorithm, creating what is missing.
pub async fn ensure_keys(store: &Store, now: i64) -> Result<(), KeyError> {
    let existing = store.signing_keys().await?;
    for alg in [SigningAlg::ES256, SigningAlg::RS256] {
        if !existing
            .iter()
            .any(|k| k.alg == alg.as_str() && k.retired_at.is_none())
        {
            match store.insert_signing_key(&record(alg, now)?).await {
                Ok(()) => tracing::info!(alg = alg.as_str(), "created signing key"),
                // A replica starting at the same moment created it first (one active key per
                // algorithm is a rule of the database): use that one.
                Err(store::StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Add a new active key for `alg`, retiring the current one. Returns the new key id.
pub async fn rotate(store: &Store, alg: SigningAlg, now: i64) -> Result<String, KeyError> {
    let rec = record(alg, now)?;
    store.rotate_signing_key(alg.as_str(), &rec, now).await?;
    Ok(rec.kid)
}

/// How long a new key is published before it signs: longer than the interval at which every
/// running process re-reads the keys (30 s), so all replicas publish a rotated-in key before
/// any of them signs with it, and an RP that fetched the JWKS from any replica knows it.
pub const PROPAGATION_SECS: i64 = 60;

/// Load every stored key that is still usable into a key set; the key that signs is the one
/// active [`PROPAGATION_SECS`] ago (see [`KeySet::signing_as_of`]).
pub async fn load(store: &Store, grace: i64, now: i64) -> Result<KeySet, KeyError> {
    let mut keys = Vec::new();
    for r in store.signing_keys().await? {
        if r.retired_at.is_some_and(|t| t + grace <= now) {
            continue;
        }
        let alg = SigningAlg::parse(&r.alg).ok_or_else(|| KeyError::Load {
            kid: r.kid.clone(),
            alg: r.alg.clone(),
            reason: "unknown algorithm".into(),
        })?;
        let key = SigningKey::from_pkcs8_pem(alg, &r.private_key_pem, r.created_at, r.retired_at)
            .map_err(|e| KeyError::Load {
            kid: r.kid.clone(),
            alg: r.alg.clone(),
            reason: e.to_string(),
        })?;
        keys.push(key);
    }
    Ok(KeySet::new(keys, grace).signing_as_of(now - PROPAGATION_SECS))
}
