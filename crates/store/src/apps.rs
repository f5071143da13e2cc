//! Apps (OIDC clients, kept as the server's JSON text) and user consents: `apps`, `consents`.

use crate::{Store, StoreError};

impl Store {
    /// Creates or replaces the app `client_id` with `config_json` (the server owns its shape).
    pub async fn upsert_app(
        &self,
        client_id: &str,
        config_json: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO apps (client_id, config_json, created_at, updated_at) \
             VALUES ($1, $2, $3, $3) \
             ON CONFLICT (client_id) DO UPDATE \
             SET config_json = excluded.config_json, updated_at = excluded.updated_at",
        )
        .bind(client_id)
        .bind(config_json)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// All apps as `(client_id, config_json)`, ordered by client id.
    pub async fn list_apps(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT client_id, config_json FROM apps ORDER BY client_id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows)
    }

    /// Deletes an app. Returns whether it existed.
    pub async fn delete_app(&self, client_id: &str) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let done = sqlx::query("DELETE FROM apps WHERE client_id = $1")
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The scopes (space-separated) `user_id` has consented to for `client_id`, if any.
    pub async fn consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let scopes: Option<(String,)> =
            sqlx::query_as("SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(scopes.map(|(s,)| s))
    }

    /// Records consent to `scopes` (space-separated), adding them to what the user already
    /// consented to for this client (consent only grows here; the union keeps the existing
    /// order, new scopes appended).
    pub async fn grant_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut requested: Vec<&str> = Vec::new();
        for scope in scopes.split_whitespace() {
            if !requested.contains(&scope) {
                requested.push(scope);
            }
        }
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO consents (user_id, client_id, scopes, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (user_id, client_id) DO NOTHING",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(requested.join(" "))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            // Write before reading so PostgreSQL holds the row lock while we merge (SQLite
            // holds the database write lock already): no concurrent grant is lost.
            sqlx::query(
                "UPDATE consents SET updated_at = $1 WHERE user_id = $2 AND client_id = $3",
            )
            .bind(now)
            .bind(user_id)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
            let (old,): (String,) =
                sqlx::query_as("SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2")
                    .bind(user_id)
                    .bind(client_id)
                    .fetch_one(&mut *tx)
                    .await?;
            let mut merged: Vec<&str> = old.split_whitespace().collect();
            for scope in requested {
                if !merged.contains(&scope) {
                    merged.push(scope);
                }
            }
            sqlx::query("UPDATE consents SET scopes = $1 WHERE user_id = $2 AND client_id = $3")
                .bind(merged.join(" "))
                .bind(user_id)
                .bind(client_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
