//! Security groups (`directory_groups`) and their members (`group_members`): what Conditional
//! Access policies include and exclude by group id.

use crate::db::{from_row, query};
use crate::risk::not_found_or_db;
use crate::users::{UserRow, user_columns};
use crate::{Store, StoreError, User};

/// A group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Caller-chosen id (a UUID from the API; a configured name in the lab).
    pub id: String,
    /// Name shown.
    pub display_name: String,
    /// What it is for.
    pub description: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}
from_row!(Group {
    id,
    display_name,
    description,
    created_at
});

impl Store {
    /// Creates a group. [`StoreError::Conflict`] if the id is taken.
    pub async fn create_group(&self, group: &Group) -> Result<(), StoreError> {
        query(
            "INSERT INTO directory_groups (id, display_name, description, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&group.id)
        .bind(&group.display_name)
        .bind(&group.description)
        .bind(group.created_at)
        .execute(&self.db)
        .await
        .map_err(|e| StoreError::conflict_or_db(e, || format!("group exists: {}", group.id)))?;
        Ok(())
    }

    /// The group with this id.
    pub async fn group(&self, id: &str) -> Result<Option<Group>, StoreError> {
        Ok(query(
            "SELECT id, display_name, description, created_at FROM directory_groups WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.db)
        .await?)
    }

    /// Every group, by name then id.
    pub async fn list_groups(&self) -> Result<Vec<Group>, StoreError> {
        Ok(query(
            "SELECT id, display_name, description, created_at FROM directory_groups \
             ORDER BY display_name, id",
        )
        .fetch_all(&self.db)
        .await?)
    }

    /// Deletes a group and its memberships; whether it existed.
    pub async fn delete_group(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        query("DELETE FROM group_members WHERE group_id = $1")
            .bind(id)
            .execute(&mut tx)
            .await?;
        let gone = query("DELETE FROM directory_groups WHERE id = $1")
            .bind(id)
            .execute(&mut tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(gone == 1)
    }

    /// Adds a user to a group; false if they were a member already.
    /// [`StoreError::NotFound`] if the group or the user does not exist.
    pub async fn add_group_member(
        &self,
        group_id: &str,
        user_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let added = query(
            "INSERT INTO group_members (group_id, user_id, added_at) VALUES ($1, $2, $3) \
             ON CONFLICT (group_id, user_id) DO NOTHING",
        )
        .bind(group_id)
        .bind(user_id)
        .bind(now)
        .execute(&self.db)
        .await
        .map_err(not_found_or_db)?
        .rows_affected();
        Ok(added == 1)
    }

    /// Removes a user from a group; whether they were a member.
    pub async fn remove_group_member(
        &self,
        group_id: &str,
        user_id: &str,
    ) -> Result<bool, StoreError> {
        let gone = query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id)
            .bind(user_id)
            .execute(&self.db)
            .await?
            .rows_affected();
        Ok(gone == 1)
    }

    /// The group's members, by sign-in name.
    pub async fn group_members(&self, group_id: &str) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> = query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id IN (SELECT user_id FROM group_members WHERE group_id = $1) \
             ORDER BY email"
        ))
        .bind(group_id)
        .fetch_all(&self.db)
        .await?;
        rows.into_iter().map(User::try_from).collect()
    }

    /// The ids of the groups the user is in.
    pub async fn user_group_ids(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> =
            query("SELECT group_id FROM group_members WHERE user_id = $1 ORDER BY group_id")
                .bind(user_id)
                .fetch_all(&self.db)
                .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}
