//! Directory role assignments (`role_members`): which users hold which role. The roles
//! themselves are the server's (one today: the administrator).

use crate::db::query;
use crate::risk::not_found_or_db;
use crate::users::{UserRow, user_columns};
use crate::{Store, StoreError, User};

impl Store {
    /// Gives `user_id` the role; false if they held it already. [`StoreError::NotFound`] if
    /// there is no such user.
    pub async fn add_role_member(
        &self,
        role_id: &str,
        user_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let added = query(
            "INSERT INTO role_members (role_id, user_id, added_at) VALUES ($1, $2, $3) \
             ON CONFLICT (role_id, user_id) DO NOTHING",
        )
        .bind(role_id)
        .bind(user_id)
        .bind(now)
        .execute(&self.db)
        .await
        .map_err(not_found_or_db)?
        .rows_affected();
        Ok(added == 1)
    }

    /// Takes the role from `user_id`; whether they held it.
    pub async fn remove_role_member(
        &self,
        role_id: &str,
        user_id: &str,
    ) -> Result<bool, StoreError> {
        let gone = query("DELETE FROM role_members WHERE role_id = $1 AND user_id = $2")
            .bind(role_id)
            .bind(user_id)
            .execute(&self.db)
            .await?
            .rows_affected();
        Ok(gone == 1)
    }

    /// Whether `user_id` holds the role.
    pub async fn has_role(&self, role_id: &str, user_id: &str) -> Result<bool, StoreError> {
        let row: Option<(String,)> =
            query("SELECT user_id FROM role_members WHERE role_id = $1 AND user_id = $2")
                .bind(role_id)
                .bind(user_id)
                .fetch_optional(&self.db)
                .await?;
        Ok(row.is_some())
    }

    /// The users holding the role, by sign-in name.
    pub async fn role_members(&self, role_id: &str) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> = query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id IN (SELECT user_id FROM role_members WHERE role_id = $1) \
             ORDER BY email"
        ))
        .bind(role_id)
        .fetch_all(&self.db)
        .await?;
        rows.into_iter().map(User::try_from).collect()
    }
}
