//! What each partner's ID tokens look like (`partner_profiles`): the claim names every verified
//! token carried and every claim name ever seen, so the server can tell a token whose claims
//! deviate from what the partner always sends (`tokenIssuerAnomaly`).

use crate::db::query;
use crate::{Backend, Store, StoreError};

/// A partner's claim profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartnerProfile {
    /// The partner's id.
    pub partner_id: String,
    /// How many verified ID tokens the profile was learned from.
    pub tokens_seen: i64,
    /// Claim names every one of those tokens carried (the intersection), sorted.
    pub always: Vec<String>,
    /// Every claim name any of them carried (the union), sorted.
    pub seen: Vec<String>,
    /// When the last token was recorded (0 for a partner with no token yet).
    pub updated_at: i64,
}

impl Store {
    /// The claim profile of `partner_id` (with nothing learned yet if no token was recorded).
    pub async fn partner_profile(&self, partner_id: &str) -> Result<PartnerProfile, StoreError> {
        let row: Option<(i64, String, String, i64)> = query(
            "SELECT tokens_seen, always_json, seen_json, updated_at \
             FROM partner_profiles WHERE partner_id = $1",
        )
        .bind(partner_id)
        .fetch_optional(&self.db)
        .await?;
        profile(partner_id, row)
    }

    /// Learns from one verified ID token of `partner_id` carrying `claim_names`, and returns
    /// the profile as it was before (what this token is to be judged against). One transaction:
    /// concurrent sign-ins through the same partner each see the profile the other left, so no
    /// token is lost from the intersection.
    pub async fn record_partner_token(
        &self,
        partner_id: &str,
        claim_names: &[String],
        now: i64,
    ) -> Result<PartnerProfile, StoreError> {
        let mut tx = self.begin_write().await?;
        // The row exists before it is locked, so two first tokens do not race on the insert.
        query(
            "INSERT INTO partner_profiles \
             (partner_id, tokens_seen, always_json, seen_json, updated_at) \
             VALUES ($1, 0, '[]', '[]', 0) ON CONFLICT (partner_id) DO NOTHING",
        )
        .bind(partner_id)
        .execute(&mut tx)
        .await?;
        // SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL needs the row lock.
        let select = match self.backend() {
            Backend::Sqlite => {
                "SELECT tokens_seen, always_json, seen_json, updated_at \
                 FROM partner_profiles WHERE partner_id = $1"
            }
            Backend::Postgres => {
                "SELECT tokens_seen, always_json, seen_json, updated_at \
                 FROM partner_profiles WHERE partner_id = $1 FOR UPDATE"
            }
        };
        let row: Option<(i64, String, String, i64)> = query(select)
            .bind(partner_id)
            .fetch_optional(&mut tx)
            .await?;
        let before = profile(partner_id, row)?;
        let mut names: Vec<String> = claim_names.to_vec();
        names.sort();
        names.dedup();
        let always: Vec<String> = if before.tokens_seen == 0 {
            names.clone()
        } else {
            before
                .always
                .iter()
                .filter(|c| names.contains(c))
                .cloned()
                .collect()
        };
        let mut seen = before.seen.clone();
        seen.extend(names);
        seen.sort();
        seen.dedup();
        let json =
            |v: &[String]| serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()));
        query(
            "UPDATE partner_profiles SET tokens_seen = tokens_seen + 1, always_json = $2, \
             seen_json = $3, updated_at = $4 WHERE partner_id = $1",
        )
        .bind(partner_id)
        .bind(json(&always)?)
        .bind(json(&seen)?)
        .bind(now)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(before)
    }
}

fn profile(
    partner_id: &str,
    row: Option<(i64, String, String, i64)>,
) -> Result<PartnerProfile, StoreError> {
    let Some((tokens_seen, always, seen, updated_at)) = row else {
        return Ok(PartnerProfile {
            partner_id: partner_id.to_owned(),
            ..PartnerProfile::default()
        });
    };
    let list = |text: &str, column: &str| {
        serde_json::from_str::<Vec<String>>(text).map_err(|e| {
            StoreError::Corrupt(format!("partner_profiles.{column} of {partner_id}: {e}"))
        })
    };
    Ok(PartnerProfile {
        partner_id: partner_id.to_owned(),
        tokens_seen,
        always: list(&always, "always_json")?,
        seen: list(&seen, "seen_json")?,
        updated_at,
    })
}
