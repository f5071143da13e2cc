//! Signing keys parsed once, not once per signature.
//!
//! jsonwebtoken builds its signer from the key's PKCS#8 bytes on every `encode`, and parsing an
//! ES256 key costs about as much as the signature itself (an RS256 key half as much again as
//! its signature). jsonwebtoken's extension point for this is its process-wide
//! [`CryptoProvider`]: ours is its own aws-lc-rs provider except that, for a key the tenant
//! loaded to sign with, the signer reuses the key pair parsed when the key was loaded. The
//! signature is made by aws-lc-rs exactly as jsonwebtoken's signer makes it; anything else
//! (other keys, verification, JWK helpers) goes to jsonwebtoken's provider unchanged.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner};
use jsonwebtoken::signature::{Error as SignatureError, Signer};
use jsonwebtoken::{Algorithm, EncodingKey};

/// A key pair parsed from a signing key's PKCS#8 bytes.
pub(super) enum KeyPair {
    /// ES256.
    Es256(EcdsaKeyPair),
    /// RS256.
    Rs256(RsaKeyPair),
}

impl KeyPair {
    fn algorithm(&self) -> Algorithm {
        match self {
            KeyPair::Es256(_) => Algorithm::ES256,
            KeyPair::Rs256(_) => Algorithm::RS256,
        }
    }
}

/// The parsed key pairs of loaded signing keys, by their PKCS#8 bytes. Weak: an entry lives as
/// long as a [`super::SigningKey`] holding it, so retired and replaced keys are not kept.
static PARSED: LazyLock<Mutex<HashMap<Vec<u8>, Weak<KeyPair>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

static PROVIDER: LazyLock<CryptoProvider> = LazyLock::new(|| CryptoProvider {
    signer_factory: signer,
    ..jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.clone()
});

/// Makes ours jsonwebtoken's provider for this process. It must run before jsonwebtoken is
/// first used (which fixes its provider for good), so it runs first thing when a key loads;
/// if something used jsonwebtoken earlier, signing still works, parsing every time.
pub(super) fn install() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Err only when a provider is already fixed: then that one signs (correctly, slower).
        let _ = CryptoProvider::install_default(&PROVIDER);
    });
}

/// Parses a signing key once and keeps the result where the provider finds it.
pub(super) fn parse(key: &EncodingKey, alg: Algorithm) -> Result<Arc<KeyPair>, String> {
    let bytes = key.as_bytes();
    let mut parsed = PARSED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(pair) = parsed.get(bytes).and_then(Weak::upgrade)
        && pair.algorithm() == alg
    {
        return Ok(pair);
    }
    let pair = Arc::new(match alg {
        Algorithm::ES256 => KeyPair::Es256(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, bytes)
                .map_err(|e| format!("not a P-256 PKCS#8 key: {e}"))?,
        ),
        Algorithm::RS256 => {
            KeyPair::Rs256(RsaKeyPair::from_der(bytes).map_err(|e| format!("not an RSA key: {e}"))?)
        }
        other => return Err(format!("{other:?} keys are not used for signing")),
    });
    parsed.retain(|_, pair| pair.strong_count() > 0);
    parsed.insert(bytes.to_vec(), Arc::downgrade(&pair));
    Ok(pair)
}

/// The provider's signer factory: the parsed key pair when there is one for these bytes and
/// this algorithm, else jsonwebtoken's own signer.
fn signer(alg: &Algorithm, key: &EncodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    let pair = PARSED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(key.as_bytes())
        .and_then(Weak::upgrade)
        .filter(|pair| pair.algorithm() == *alg);
    match pair {
        Some(pair) => Ok(Box::new(ParsedSigner(pair))),
        None => (jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.signer_factory)(alg, key),
    }
}

struct ParsedSigner(Arc<KeyPair>);

impl Signer<Vec<u8>> for ParsedSigner {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, SignatureError> {
        let rng = SystemRandom::new();
        match &*self.0 {
            KeyPair::Es256(pair) => pair
                .sign(&rng, message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(SignatureError::from_source),
            KeyPair::Rs256(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(SignatureError::from_source)?;
                Ok(signature)
            }
        }
    }
}

impl JwtSigner for ParsedSigner {
    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::jwt::{SigningAlg, SigningKey};
    use base64::Engine as _;
    use jsonwebtoken::{DecodingKey, Validation};

    /// A P-256 key of this test's own, so no other test holds the same bytes.
    fn fresh_es256() -> SigningKey {
        let der =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
        SigningKey::from_pkcs8_pem(SigningAlg::ES256, &pem, 0, None).unwrap()
    }

    fn held(key: &EncodingKey) -> bool {
        PARSED
            .lock()
            .unwrap()
            .get(key.as_bytes())
            .is_some_and(|pair| pair.strong_count() > 0)
    }

    #[test]
    fn a_loaded_key_is_parsed_once_and_released_with_the_key() {
        let key = fresh_es256();
        let encoding = EncodingKey::from_ec_der(key.encoding.as_bytes());
        assert!(held(&encoding));
        // Loading the same key again shares the parsed pair.
        let again = parse(&encoding, Algorithm::ES256).unwrap();
        assert!(Arc::ptr_eq(&again, &key._parsed));
        drop(again);
        drop(key);
        assert!(!held(&encoding));
    }

    #[test]
    fn the_parsed_signer_signs_what_jsonwebtoken_verifies() {
        let key = fresh_es256();
        let signer = signer(&Algorithm::ES256, &key.encoding).unwrap();
        assert_eq!(signer.algorithm(), Algorithm::ES256);
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::ES256),
            &serde_json::json!({"sub": "u1", "exp": 4_000_000_000_u64}),
            &key.encoding,
        )
        .unwrap();
        let decoding = DecodingKey::from_jwk(key.public_jwk()).unwrap();
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &decoding,
            &Validation::new(Algorithm::ES256),
        )
        .unwrap();
        assert_eq!(data.claims["sub"], "u1");
    }

    #[test]
    fn other_keys_and_algorithms_use_jsonwebtokens_signer() {
        install();
        let key = EncodingKey::from_secret(b"a shared secret of enough length!");
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "u1", "exp": 4_000_000_000_u64}),
            &key,
        )
        .unwrap();
        let decoded = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_secret(b"a shared secret of enough length!"),
            &Validation::new(Algorithm::HS256),
        );
        assert!(decoded.is_ok());
        // A loaded ES256 key asked for as another algorithm is not the parsed signer.
        let loaded = fresh_es256();
        assert!(signer(&Algorithm::ES384, &loaded.encoding).is_err());
    }
}
