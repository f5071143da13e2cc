//! Apps (OIDC clients, kept as the server's JSON text) and user consents: `apps`, `consents`.

use crate::db::query;
use crate::{Store, StoreError};

/// Where an app's registration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppSource {
    /// The tenant's config file: written again at every start, read-only elsewhere.
    Config,
    /// The admin API (`/v1.0/applications`) or the CLI.
    Api,
    /// RFC 7591 dynamic client registration.
    Dynamic,
}

impl AppSource {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Api => "api",
            Self::Dynamic => "dynamic",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "config" => Some(Self::Config),
            "api" => Some(Self::Api),
            "dynamic" => Some(Self::Dynamic),
            _ => None,
        }
    }
}

/// A stored app registration. The store keeps the server's JSON texts as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    /// Client id.
    pub client_id: String,
    /// The registration (the server's JSON).
    pub config_json: String,
    /// Where it comes from.
    pub source: AppSource,
    /// The client secrets' digests and metadata (the server's JSON list).
    pub secrets: String,
    /// Digest of the RFC 7592 registration access token, for dynamic apps.
    pub registration_token_hash: Option<String>,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Last change, unix seconds.
    pub updated_at: i64,
}

type AppRow = (String, String, String, String, Option<String>, i64, i64);

macro_rules! app_columns {
    () => {
        "client_id, config_json, source, secrets, registration_token_hash, created_at, updated_at"
    };
}

fn app_record(row: AppRow) -> Result<AppRecord, StoreError> {
    let (client_id, config_json, source, secrets, registration_token_hash, created_at, updated_at) =
        row;
    let source = AppSource::parse(&source)
        .ok_or_else(|| StoreError::Corrupt(format!("app {client_id}: source {source:?}")))?;
    Ok(AppRecord {
        client_id,
        config_json,
        source,
        secrets,
        registration_token_hash,
        created_at,
        updated_at,
    })
}

impl Store {
    /// Makes the config-file apps exactly `apps` (`(client_id, config_json)`), in one
    /// transaction: each is written, and config-file apps no longer in the file are removed.
    /// Fails with [`StoreError::Conflict`], changing nothing, when one of them has the client id
    /// of an app registered through the API or dynamic registration.
    pub async fn sync_config_apps(
        &self,
        apps: &[(String, String)],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let registered: Vec<(String,)> =
            query("SELECT client_id FROM apps WHERE source <> 'config'")
                .fetch_all(&mut tx)
                .await?;
        let clashes: Vec<&str> = registered
            .iter()
            .map(|(id,)| id.as_str())
            .filter(|id| apps.iter().any(|(c, _)| c == id))
            .collect();
        if !clashes.is_empty() {
            return Err(StoreError::Conflict(format!(
                "client id(s) {} in the config file are also registered through the API; \
                 rename the config app or delete the registered one",
                clashes.join(", ")
            )));
        }
        let stale: Vec<(String,)> = query("SELECT client_id FROM apps WHERE source = 'config'")
            .fetch_all(&mut tx)
            .await?;
        for (id,) in stale
            .iter()
            .filter(|(id,)| !apps.iter().any(|(c, _)| c == id))
        {
            query("DELETE FROM apps WHERE client_id = $1")
                .bind(id)
                .execute(&mut tx)
                .await?;
        }
        for (client_id, json) in apps {
            // `source` keeps its default, `config`.
            query(
                "INSERT INTO apps (client_id, config_json, created_at, updated_at) \
                 VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (client_id) DO UPDATE \
                 SET config_json = excluded.config_json, updated_at = excluded.updated_at",
            )
            .bind(client_id)
            .bind(json)
            .bind(now)
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every app registration, ordered by client id.
    pub async fn app_records(&self) -> Result<Vec<AppRecord>, StoreError> {
        let rows: Vec<AppRow> = query(concat!(
            "SELECT ",
            app_columns!(),
            " FROM apps ORDER BY client_id"
        ))
        .fetch_all(&self.db)
        .await?;
        rows.into_iter().map(app_record).collect()
    }

    /// The app registration `client_id`, if any.
    pub async fn app_record(&self, client_id: &str) -> Result<Option<AppRecord>, StoreError> {
        let row: Option<AppRow> = query(concat!(
            "SELECT ",
            app_columns!(),
            " FROM apps WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(&self.db)
        .await?;
        row.map(app_record).transpose()
    }

    /// Registers a new app (API or dynamic). [`StoreError::Conflict`] if the client id is taken.
    pub async fn insert_app(&self, app: &AppRecord) -> Result<(), StoreError> {
        query(concat!(
            "INSERT INTO apps (",
            app_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&app.client_id)
        .bind(&app.config_json)
        .bind(app.source.as_str())
        .bind(&app.secrets)
        .bind(&app.registration_token_hash)
        .bind(app.created_at)
        .bind(app.updated_at)
        .execute(&self.db)
        .await
        .map_err(|e| {
            StoreError::conflict_or_db(e, || format!("client id already exists: {}", app.client_id))
        })?;
        Ok(())
    }

    /// Replaces a registered app's registration and secrets, if it is still the one the caller
    /// read (`updated_at` unchanged) and not from the config file. Returns whether it was
    /// written: `false` means it is gone, read-only, or changed meanwhile.
    pub async fn update_app(&self, app: &AppRecord, read_at: i64) -> Result<bool, StoreError> {
        let done = query(
            "UPDATE apps SET config_json = $1, secrets = $2, updated_at = $3 \
             WHERE client_id = $4 AND updated_at = $5 AND source <> 'config'",
        )
        .bind(&app.config_json)
        .bind(&app.secrets)
        .bind(app.updated_at)
        .bind(&app.client_id)
        .bind(read_at)
        .execute(&self.db)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes an app and ends what hangs off it, in one transaction: its grants are revoked
    /// (with them its refresh tokens and access tokens) and its consents removed. Returns
    /// whether it existed.
    pub async fn delete_app(&self, client_id: &str, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = query("DELETE FROM apps WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        query("UPDATE grants SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(client_id)
            .execute(&mut tx)
            .await?;
        query("DELETE FROM consents WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The scopes (space-separated) `user_id` has consented to for `client_id`, if any.
    pub async fn consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let scopes: Option<(String,)> =
            query("SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .fetch_optional(&self.db)
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
        let inserted = query(
            "INSERT INTO consents (user_id, client_id, scopes, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (user_id, client_id) DO NOTHING",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(requested.join(" "))
        .bind(now)
        .execute(&mut tx)
        .await?;
        if inserted.rows_affected() == 0 {
            // Write before reading so PostgreSQL holds the row lock while we merge (SQLite
            // holds the database write lock already): no concurrent grant is lost.
            query("UPDATE consents SET updated_at = $1 WHERE user_id = $2 AND client_id = $3")
                .bind(now)
                .bind(user_id)
                .bind(client_id)
                .execute(&mut tx)
                .await?;
            let (old,): (String,) =
                query("SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2")
                    .bind(user_id)
                    .bind(client_id)
                    .fetch_one(&mut tx)
                    .await?;
            let mut merged: Vec<&str> = old.split_whitespace().collect();
            for scope in requested {
                if !merged.contains(&scope) {
                    merged.push(scope);
                }
            }
            query("UPDATE consents SET scopes = $1 WHERE user_id = $2 AND client_id = $3")
                .bind(merged.join(" "))
                .bind(user_id)
                .bind(client_id)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
