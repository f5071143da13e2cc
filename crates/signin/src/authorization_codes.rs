//! Authorization codes that carry their grant, sealed with the tenant's code key
//! (AES-256-GCM): issuing a code writes nothing, and the store's `redeem_sealed_code` inserts
//! the grant at the token endpoint, where the grant's id is the code's "spent" mark. A code
//! that does not open (another tenant's, altered, forged) is simply unknown.
//!
//! The key is created once per tenant in the database, so every replica and every restart
//! opens the codes the others issued.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use protocol::sealed::{SECRET_LEN, SealingKey};
use serde::{Deserialize, Serialize};
use store::{AuthCode, Grant, StoreError};

use crate::Directory;
use crate::secrets::{random_bytes, token_hash};

/// Associated data of every sealed code: a value sealed for another purpose never opens here.
const PURPOSE: &str = "tenantd authorization code v1";

/// What a code carries: its grant and what the token request is checked against.
#[derive(Serialize, Deserialize)]
struct Carried {
    grant_id: String,
    client_id: String,
    user_id: String,
    session_id: Option<String>,
    scope: String,
    auth_time: i64,
    amr: Vec<String>,
    acr: Option<String>,
    offline: bool,
    claims: Option<String>,
    grant_expires_at: i64,
    redirect_uri: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    created_at: i64,
    expires_at: i64,
}

/// The tenant's sealing key, read (or created) once: codes and sign-ins not yet authenticated
/// ([`crate::sign_in::begin`]) are sealed with it, each for its own purpose.
pub(crate) async fn key(dir: &Directory) -> Result<&SealingKey, StoreError> {
    dir.code_key
        .get_or_try_init(|| async {
            let candidate = URL_SAFE_NO_PAD.encode(random_bytes::<SECRET_LEN>());
            let secret = dir.store.code_sealing_secret(&candidate, dir.now()).await?;
            URL_SAFE_NO_PAD
                .decode(secret)
                .ok()
                .and_then(|bytes| SealingKey::new(&bytes).ok())
                .ok_or_else(|| StoreError::Corrupt("code_sealing_keys.secret is not a key".into()))
        })
        .await
}

/// Seals `grant` and its `code` (the code's hash is ignored: the code is the sealed text).
pub async fn seal(dir: &Directory, grant: &Grant, code: &AuthCode) -> Result<String, StoreError> {
    let carried = Carried {
        grant_id: grant.id.clone(),
        client_id: grant.client_id.clone(),
        user_id: grant.user_id.clone(),
        session_id: grant.session_id.clone(),
        scope: grant.scope.clone(),
        auth_time: grant.auth_time,
        amr: grant.amr.clone(),
        acr: grant.acr.clone(),
        offline: grant.offline,
        claims: grant.claims.clone(),
        grant_expires_at: grant.expires_at,
        redirect_uri: code.redirect_uri.clone(),
        nonce: code.nonce.clone(),
        code_challenge: code.code_challenge.clone(),
        code_challenge_method: code.code_challenge_method.clone(),
        created_at: code.created_at,
        expires_at: code.expires_at,
    };
    let json = serde_json::to_vec(&carried)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode a code: {e}")))?;
    Ok(key(dir).await?.seal(random_bytes(), PURPOSE, &json))
}

/// The code and grant `code` carries, if it is one of this tenant's codes.
pub async fn open(dir: &Directory, code: &str) -> Result<Option<(AuthCode, Grant)>, StoreError> {
    let Some(json) = key(dir).await?.open(PURPOSE, code) else {
        return Ok(None);
    };
    let Ok(c) = serde_json::from_slice::<Carried>(&json) else {
        return Ok(None);
    };
    let grant = Grant {
        id: c.grant_id.clone(),
        client_id: c.client_id.clone(),
        user_id: c.user_id,
        session_id: c.session_id,
        scope: c.scope.clone(),
        auth_time: c.auth_time,
        amr: c.amr,
        acr: c.acr,
        offline: c.offline,
        created_at: c.created_at,
        expires_at: c.grant_expires_at,
        revoked_at: None,
        claims: c.claims,
    };
    let code = AuthCode {
        code_hash: token_hash(code),
        grant_id: c.grant_id,
        client_id: c.client_id,
        redirect_uri: c.redirect_uri,
        scope: c.scope,
        nonce: c.nonce,
        code_challenge: c.code_challenge,
        code_challenge_method: c.code_challenge_method,
        created_at: c.created_at,
        expires_at: c.expires_at,
        consumed_at: None,
    };
    Ok(Some((code, grant)))
}
