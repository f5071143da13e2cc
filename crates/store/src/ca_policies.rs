//! Conditional Access policies created through the admin API: `ca_policies`; and the states an
//! admin switched file policies to: `ca_policy_states`. The server owns the JSON shape (Graph's
//! `conditionalAccessPolicy`) and validates it before it gets here.

use crate::db::query;
use crate::{Store, StoreError};

impl Store {
    /// All API-created policies as `(id, policy_json)`, oldest first (the evaluation order).
    pub async fn list_ca_policies(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows: Vec<(String, String)> =
            query("SELECT id, policy_json FROM ca_policies ORDER BY created_at, id")
                .fetch_all(&self.db)
                .await?;
        Ok(rows)
    }

    /// Creates policy `id`; [`StoreError::Conflict`] if the id is taken.
    pub async fn insert_ca_policy(
        &self,
        id: &str,
        policy_json: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO ca_policies (id, policy_json, created_at, updated_at) \
             VALUES ($1, $2, $3, $3)",
        )
        .bind(id)
        .bind(policy_json)
        .bind(now)
        .execute(&self.db)
        .await
        .map_err(|e| StoreError::conflict_or_db(e, || format!("policy exists: {id}")))?;
        Ok(())
    }

    /// Replaces policy `id`; [`StoreError::NotFound`] if there is none.
    pub async fn update_ca_policy(
        &self,
        id: &str,
        policy_json: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let done = query("UPDATE ca_policies SET policy_json = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(policy_json)
            .bind(now)
            .execute(&self.db)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Deletes policy `id`. Returns whether it existed.
    pub async fn delete_ca_policy(&self, id: &str) -> Result<bool, StoreError> {
        let done = query("DELETE FROM ca_policies WHERE id = $1")
            .bind(id)
            .execute(&self.db)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The states admins switched file policies to, as `(policy id, state)`.
    pub async fn ca_policy_states(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows: Vec<(String, String)> =
            query("SELECT policy_id, state FROM ca_policy_states ORDER BY policy_id")
                .fetch_all(&self.db)
                .await?;
        Ok(rows)
    }

    /// Switches file policy `id` to `state` (Graph's word), replacing an earlier switch.
    pub async fn set_ca_policy_state(
        &self,
        id: &str,
        state: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO ca_policy_states (policy_id, state, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (policy_id) DO UPDATE SET state = excluded.state, \
             updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(state)
        .bind(now)
        .execute(&self.db)
        .await?;
        Ok(())
    }
}
