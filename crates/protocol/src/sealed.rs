//! Values the server hands out and must get back unchanged, sealed with authenticated
//! encryption (AES-256-GCM through aws-lc-rs): an authorization code carries its grant, so
//! issuing one writes nothing. Sealed text is base64url of `nonce || ciphertext || tag`; the
//! caller supplies the random nonce (this crate takes randomness as an argument) and a purpose
//! label bound in as associated data, so a value sealed for one use never opens for another.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Length of a sealing key's secret, in bytes.
pub const SECRET_LEN: usize = 32;

/// A tenant's sealing key.
pub struct SealingKey(LessSafeKey);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

/// The secret is not a 256-bit key.
#[derive(Debug, thiserror::Error)]
#[error("a sealing key is {SECRET_LEN} bytes")]
pub struct BadSecret;

impl SealingKey {
    /// The key with this 256-bit secret.
    pub fn new(secret: &[u8]) -> Result<SealingKey, BadSecret> {
        if secret.len() != SECRET_LEN {
            return Err(BadSecret);
        }
        let key = UnboundKey::new(&AES_256_GCM, secret).map_err(|_| BadSecret)?;
        Ok(SealingKey(LessSafeKey::new(key)))
    }

    /// Seals `plaintext` for `purpose` with a fresh random `nonce` (never reuse one).
    pub fn seal(&self, nonce: [u8; NONCE_LEN], purpose: &str, plaintext: &[u8]) -> String {
        let mut body = plaintext.to_vec();
        if self
            .0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut body,
            )
            .is_err()
        {
            // Only a plaintext beyond GCM's 64 GiB limit fails, which no caller seals; an
            // empty value never opens.
            return String::new();
        }
        let mut buf = nonce.to_vec();
        buf.extend_from_slice(&body);
        URL_SAFE_NO_PAD.encode(buf)
    }

    /// The plaintext of a value sealed for `purpose` with this key; `None` for anything else
    /// (another key or purpose, altered, truncated, not base64url).
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        let mut buf = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if buf.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let mut body = buf.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&buf).ok()?;
        let plaintext = self
            .0
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut body)
            .ok()?;
        Some(plaintext.to_vec())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(b: u8) -> SealingKey {
        SealingKey::new(&[b; SECRET_LEN]).unwrap()
    }

    #[test]
    fn opens_only_with_its_key_and_purpose() {
        let sealed = key(1).seal([7; NONCE_LEN], "code", b"grant g1");
        assert_eq!(
            key(1).open("code", &sealed).as_deref(),
            Some(&b"grant g1"[..])
        );
        assert_eq!(key(2).open("code", &sealed), None, "another key");
        assert_eq!(key(1).open("session", &sealed), None, "another purpose");
    }

    #[test]
    fn any_change_is_refused() {
        let sealed = key(1).seal([7; NONCE_LEN], "code", b"grant g1");
        let raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for i in 0..raw.len() {
            let mut altered = raw.clone();
            altered[i] ^= 1;
            assert_eq!(
                key(1).open("code", &URL_SAFE_NO_PAD.encode(&altered)),
                None,
                "byte {i}"
            );
        }
        assert_eq!(
            key(1).open("code", &sealed[..sealed.len() - 2]),
            None,
            "truncated"
        );
        assert_eq!(key(1).open("code", ""), None);
        assert_eq!(key(1).open("code", "not base64!"), None);
    }

    #[test]
    fn nonces_make_equal_plaintexts_differ() {
        let k = key(1);
        assert_ne!(
            k.seal([1; NONCE_LEN], "code", b"x"),
            k.seal([2; NONCE_LEN], "code", b"x")
        );
    }

    #[test]
    fn a_secret_is_256_bits() {
        assert!(SealingKey::new(&[0; 16]).is_err());
    }
}
