//! Lists of seen or revoked token ids: `revoked_access_tokens` (tokens without a grant, e.g.
//! client_credentials) and `client_jtis` (`private_key_jwt` client assertion replay protection).

use crate::db::query;
use crate::{Store, StoreError};

impl Store {
    /// Records an access token as revoked by its `jti`, until `expires_at` (when the token
    /// dies anyway and [`Store::purge_expired`] forgets it). Revoking twice is fine.
    pub async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        query(
            "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) \
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(expires_at)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Whether the access token with this `jti` has been revoked.
    pub async fn access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let found: Option<(i64,)> =
            query("SELECT expires_at FROM revoked_access_tokens WHERE jti = $1")
                .bind(jti)
                .fetch_optional(&self.db)
                .await?;
        Ok(found.is_some())
    }

    /// Remembers a client assertion's `jti` until `expires_at`. Returns `false` when this
    /// client already used the `jti` and that entry is still unexpired at `now` (a replay);
    /// `true` when it is new (or its old entry had expired), in which case it is now stored.
    pub async fn remember_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        query("DELETE FROM client_jtis WHERE client_id = $1 AND jti = $2 AND expires_at <= $3")
            .bind(client_id)
            .bind(jti)
            .bind(now)
            .execute(&mut tx)
            .await?;
        let inserted = query(
            "INSERT INTO client_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (client_id, jti) DO NOTHING",
        )
        .bind(client_id)
        .bind(jti)
        .bind(expires_at)
        .execute(&mut tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(inserted == 1)
    }
}
