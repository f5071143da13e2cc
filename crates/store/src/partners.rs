//! Partners (trusted other tenants, kept as the server's JSON text): `partners`.

use crate::db::query;
use crate::{Store, StoreError};

impl Store {
    /// Creates or replaces the partner `id` with `config_json` (the server owns its shape).
    pub async fn upsert_partner(
        &self,
        id: &str,
        config_json: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO partners (id, config_json, created_at, updated_at) \
             VALUES ($1, $2, $3, $3) \
             ON CONFLICT (id) DO UPDATE \
             SET config_json = excluded.config_json, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(config_json)
        .bind(now)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// All partners as `(id, config_json)`, ordered by id.
    pub async fn list_partners(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows: Vec<(String, String)> = query("SELECT id, config_json FROM partners ORDER BY id")
            .fetch_all(&self.db)
            .await?;
        Ok(rows)
    }

    /// Deletes a partner. Returns whether it existed. Its guests are kept: `users.partner_id`
    /// is not a foreign key, so deleting a partner never deletes users.
    pub async fn delete_partner(&self, id: &str) -> Result<bool, StoreError> {
        let done = query("DELETE FROM partners WHERE id = $1")
            .bind(id)
            .execute(&self.db)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
