//! Repository tests for `tenantd-store`, one binary.
//!
//! Every scenario runs on SQLite (a fresh temp file) and, when `TENANTD_TEST_DATABASE_URL` is
//! set (e.g. `postgres://postgres@127.0.0.1:5432/test`), on PostgreSQL in a freshly created
//! database of its own, so tests run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audits;
mod ca_policies;
mod detections;
mod email_otp;
mod grants;
mod groups;
mod guests;
mod keys;
mod lockouts;
mod mfa;
mod misc;
mod partner_profiles;
mod risk;
mod roles;
mod sealing;
mod sessions;
mod sign_ins;
mod signals;
mod sqlite_only;
mod ssf;
mod sspr;
mod users;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use sqlx::{Connection, Executor};
use tenantd_store::{
    AuthCode, CodeRedemption, Grant, NewGuest, NewUser, Opened, RefreshToken, SealError, Sealer,
    Session, Store,
};

/// A stand-in for the tenant's master key: reversible, but never the plaintext, and bound to
/// its place like the real one, so tests see what is stored. `current` seals; `previous` open.
#[derive(Debug)]
pub struct TestSealer {
    pub current: &'static str,
    pub previous: Vec<&'static str>,
}

impl Sealer for TestSealer {
    fn seal(&self, place: &str, plaintext: &str) -> String {
        let hex: String = plaintext.bytes().map(|b| format!("{b:02x}")).collect();
        format!("test:{}:{place}:{hex}", self.current)
    }

    fn open(&self, place: &str, stored: &str) -> Result<Opened, SealError> {
        let Some(rest) = stored.strip_prefix("test:") else {
            return Err(SealError::Clear);
        };
        let (key, rest) = rest.split_once(':').ok_or(SealError::Altered)?;
        if key != self.current && !self.previous.contains(&key) {
            return Err(SealError::UnknownKey(key.to_owned()));
        }
        let hex = rest
            .strip_prefix(place)
            .and_then(|r| r.strip_prefix(':'))
            .ok_or(SealError::Altered)?;
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| SealError::Altered)?;
        Ok(Opened {
            plaintext: String::from_utf8(bytes).map_err(|_| SealError::Altered)?,
            current: key == self.current,
        })
    }

    fn current_prefix(&self) -> String {
        format!("test:{}:", self.current)
    }
}

/// The sealer every scenario's store uses.
pub fn sealer() -> Arc<dyn Sealer> {
    Arc::new(TestSealer {
        current: "k1",
        previous: Vec::new(),
    })
}

/// What a scenario gets: the store and the URL it was opened with (to reopen it, or to reach
/// the database behind the store's back).
#[derive(Clone)]
pub struct Ctx {
    pub url: String,
    pub store: Store,
}

#[derive(Clone, Copy)]
pub enum Kind {
    Sqlite,
    Postgres,
}

enum Cleanup {
    Sqlite(PathBuf),
    Postgres { base: String, name: String },
}

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A fresh SQLite file under a directory that does not exist yet.
pub fn sqlite_url() -> (String, PathBuf) {
    let dir = std::env::temp_dir().join(unique("tenantd_store_test"));
    let path = dir.join("nested").join("tenant.db");
    (format!("sqlite://{}", path.display()), dir)
}

/// `base` with its database name replaced by `name`.
fn with_database(base: &str, name: &str) -> String {
    let (main, query) = match base.split_once('?') {
        Some((main, query)) => (main, Some(query)),
        None => (base, None),
    };
    let authority_start = main.find("://").map_or(0, |i| i + 3);
    let prefix = match main[authority_start..].find('/') {
        Some(i) => &main[..authority_start + i],
        None => main,
    };
    match query {
        Some(query) => format!("{prefix}/{name}?{query}"),
        None => format!("{prefix}/{name}"),
    }
}

/// A fresh, empty database of `kind` (no migrations applied): its URL and what to clean up.
/// `None` when PostgreSQL is not configured.
async fn prepare(kind: Kind) -> Option<(String, Cleanup)> {
    sqlx::any::install_default_drivers();
    match kind {
        Kind::Sqlite => {
            let (url, dir) = sqlite_url();
            Some((url, Cleanup::Sqlite(dir)))
        }
        Kind::Postgres => {
            let Ok(base) = std::env::var("TENANTD_TEST_DATABASE_URL") else {
                println!("skipped: TENANTD_TEST_DATABASE_URL not set");
                return None;
            };
            let name = unique("tenantd_test");
            let mut conn = sqlx::AnyConnection::connect(&base).await.unwrap();
            conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .unwrap();
            conn.close().await.unwrap();
            Some((
                with_database(&base, &name),
                Cleanup::Postgres { base, name },
            ))
        }
    }
}

/// A plain pool on `url`, creating the SQLite file (and its directory) if needed.
pub async fn raw_pool(url: &str) -> sqlx::AnyPool {
    let url = match url.strip_prefix("sqlite://") {
        Some(path) => {
            let parent = std::path::Path::new(path).parent().unwrap();
            std::fs::create_dir_all(parent).unwrap();
            format!("{url}?mode=rwc")
        }
        None => url.to_owned(),
    };
    sqlx::AnyPool::connect(&url).await.unwrap()
}

async fn setup(kind: Kind) -> Option<(Ctx, Cleanup)> {
    let (url, cleanup) = prepare(kind).await?;
    let store = Store::connect(&url, sealer()).await.unwrap();
    Some((Ctx { url, store }, cleanup))
}

async fn cleanup(cleanup: Cleanup) {
    match cleanup {
        Cleanup::Sqlite(dir) => {
            let _ = std::fs::remove_dir_all(dir);
        }
        Cleanup::Postgres { base, name } => {
            if let Ok(mut conn) = sqlx::AnyConnection::connect(&base).await {
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let _ = conn.execute(sqlx::AssertSqlSafe(drop)).await;
                let _ = conn.close().await;
            }
        }
    }
}

/// Runs one scenario on a fresh database of `kind`, cleans up, then re-raises its panic.
pub async fn run<F, Fut>(kind: Kind, scenario: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some((ctx, to_clean)) = setup(kind).await else {
        return;
    };
    let store = ctx.store.clone();
    let outcome = tokio::spawn(scenario(ctx)).await;
    store.close().await;
    cleanup(to_clean).await;
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// Runs one scenario on a fresh database of `kind` with no migrations applied (the scenario
/// gets its URL and closes what it opens), cleans up, then re-raises its panic.
pub async fn run_unmigrated<F, Fut>(kind: Kind, scenario: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some((url, to_clean)) = prepare(kind).await else {
        return;
    };
    let outcome = tokio::spawn(scenario(url)).await;
    cleanup(to_clean).await;
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

macro_rules! scenarios {
    ($($module:ident { $($name:ident),* $(,)? })*) => {
        mod sqlite {
            $(mod $module {
                $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::run(crate::Kind::Sqlite, crate::$module::$name).await;
                })*
            })*
        }
        mod postgres {
            $(mod $module {
                $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::run(crate::Kind::Postgres, crate::$module::$name).await;
                })*
            })*
        }
    };
}

scenarios! {
    signals {
        a_partner_event_is_applied_once,
        a_receiving_stream_is_kept_per_partner,
    }
    sealing {
        secrets_are_sealed_in_the_database,
        clear_values_and_previous_keys_are_resealed,
        a_sealed_value_does_not_open_in_another_row,
    }
    ssf {
        streams_are_managed_and_one_per_app,
        risk_changes_write_the_outbox_in_their_transaction,
        delivery_keeps_order_and_state,
        mfa_changes_write_their_signals,
        a_commit_that_wrote_signals_wakes_the_push_worker,
    }
    audits {
        audits_are_listed_newest_first_filtered_and_paged,
    }
    groups {
        groups_hold_members_until_deleted,
    }
    roles {
        roles_are_held_until_taken_or_the_user_goes,
    }
    users {
        duplicate_email_conflicts,
        email_lookup_is_case_insensitive,
        user_read_by_email_with_their_risk,
        list_status_and_password,
        apps_upsert_list_delete,
        registered_apps_live_beside_config_apps,
        deleting_an_app_revokes_its_grants,
        consent_grows_by_union,
        users_page_filters_and_keyset_paging,
        members_may_be_created_disabled,
        update_user_applies_together_and_ends_sign_ins,
        deleting_a_user_deletes_everything_hanging_off_them,
    }
    sessions {
        session_expiry_and_revocation,
        ending_a_users_sign_ins_revokes_their_sessions,
        interactions_expire_and_delete,
        a_finished_sign_in_keeps_its_session_not_its_page,
        interactions_are_consumed_once,
        concurrent_consumption_has_one_winner,
        federated_session_round_trips,
    }
    guests {
        invite_creates_pending_guest,
        invite_email_and_id_conflicts,
        redeem_binds_once,
        latest_invitation_and_all_pending_completed,
        profile_refresh,
        corrupt_guest_columns_are_reported,
        partners_upsert_list_delete,
    }
    detections {
        detection_and_status_are_one_change,
        detections_list_newest_first_with_paging,
        leaked_corpus_imports_and_matches,
        fingerprints_and_tenant_secret,
        failed_accounts_are_counted_per_ip_and_window,
        queued_failures_count_for_the_spray,
        the_spray_count_seeks_only_failures,
        remediation_closes_risky_sign_ins_and_confirmed_safe_ones_are_familiar,
        retention_purges_old_rows_in_batches_and_keeps_active_detections,
        an_admin_change_and_its_audit_line_are_one_transaction,
    }
    risk {
        user_risk_upserts_with_history,
        unknown_user_risk_is_not_found,
        risky_users_report_is_members_only_filtered_ordered_and_paged,
    }
    grants {
        grant_claims_round_trip,
        refresh_token_read_with_its_user,
        rotation_and_reuse_revokes_family,
        rotation_refuses_another_grant,
        refused_rotation_changes_nothing,
        rotation_of_an_earlier_read_checks_again,
        expired_and_unknown_refresh_tokens,
        grant_revoke_kills_refresh,
        concurrent_rotation_has_one_winner,
        session_grants_respect_offline,
        ending_a_users_sign_ins_revokes_their_grants,
        jti_replay_is_detected,
        access_token_revocation,
        sealed_code_inserts_its_grant_once_and_a_replay_revokes_it,
        sealed_code_expired_or_of_an_ended_session_is_refused,
        sealed_code_of_a_user_no_longer_active_is_refused,
        sealed_code_failing_its_check_is_spent,
        concurrent_sealed_redemption_has_one_winner,
        sealed_redemption_is_atomic,
        first_refresh_token_lives_and_rotates_like_the_rest,
        first_refresh_token_expires,
        first_refresh_token_must_be_of_its_grant,
        concurrent_redemptions_fail_alone,
        code_sealing_secret_is_created_once,
    }
    keys {
        rotation_keeps_old_key_until_deleted,
        rotation_with_taken_kid_changes_nothing,
        one_active_key_per_algorithm,
    }
    sign_ins {
        filters_and_paging,
        details_round_trip,
        recent_sign_ins_are_the_users_successes_newest_first,
        recent_sign_ins_stay_current_after_they_are_read,
        recent_sign_ins_see_another_replicas_rows,
        logged_sign_ins_are_seen_before_and_after_they_are_written,
        logged_sign_ins_are_written_in_the_background,
        a_bad_row_does_not_lose_its_batch,
        lean_rows_read_back_whole,
        a_large_batch_is_written_whole,
    }
    lockouts {
        counts_change_once_each_and_are_purged,
    }
    ca_policies {
        crud,
        file_policy_states_are_switched_and_replaced,
    }
    mfa {
        enrolment_replaces_unconfirmed_and_confirms_once,
        enrolment_errors_change_nothing,
        totp_steps_are_used_once_and_in_order,
        concurrent_step_use_has_one_winner,
        recovery_codes_are_single_use_and_per_user,
        reset_deletes_only_that_users_mfa,
        deleting_a_user_deletes_their_mfa,
    }
    partner_profiles {
        learns_intersection_and_union_and_survives_reopen,
        concurrent_tokens_are_all_counted,
    }
    email_otp {
        the_address_is_one_per_user_and_a_change_voids_its_codes,
        a_new_code_replaces_the_old_and_is_spent_once,
        concurrent_tries_are_each_counted_and_one_spends_the_code,
        the_outbox_lists_newest_first_and_purges,
        deleting_a_user_deletes_their_address_and_codes,
    }
    sspr {
        attempts_are_counted_per_bucket_in_a_fixed_window,
        concurrent_attempts_are_each_counted,
    }
    misc {
        survives_reopen,
        purge_expired_removes_only_dead_rows,
        corrupt_rows_are_reported,
    }
}

// ---- fixtures ----

pub fn new_user(id: &str, email: &str) -> NewUser {
    NewUser {
        id: id.to_owned(),
        email: email.to_owned(),
        display_name: format!("User {id}"),
        given_name: Some("Given".to_owned()),
        family_name: None,
        password_hash: Some("$argon2id$v=19$fake".to_owned()),
        must_change_password: false,
        now: 100,
    }
}

pub fn session(id: &str, user_id: &str, expires_at: i64) -> Session {
    Session {
        id: id.to_owned(),
        token_hash: format!("hash-of-{id}"),
        user_id: user_id.to_owned(),
        auth_time: 100,
        amr: vec!["pwd".to_owned(), "otp".to_owned()],
        acr: Some("urn:tenantd:acr:mfa".to_owned()),
        created_at: 100,
        expires_at,
        revoked_at: None,
        federation_json: None,
    }
}

pub fn new_guest(id: &str, email: &str, partner_id: &str) -> NewGuest {
    NewGuest {
        id: id.to_owned(),
        email: email.to_owned(),
        display_name: format!("Guest {id}"),
        partner_id: partner_id.to_owned(),
        now: 100,
    }
}

pub fn grant(id: &str, user_id: &str, session_id: Option<&str>, offline: bool) -> Grant {
    Grant {
        id: id.to_owned(),
        client_id: "app-1".to_owned(),
        user_id: user_id.to_owned(),
        session_id: session_id.map(str::to_owned),
        scope: "openid profile".to_owned(),
        auth_time: 100,
        amr: vec!["pwd".to_owned()],
        acr: None,
        offline,
        created_at: 100,
        expires_at: 10_000,
        revoked_at: None,
        claims: None,
    }
}

pub fn code(grant_id: &str, expires_at: i64) -> AuthCode {
    AuthCode {
        grant_id: grant_id.to_owned(),
        client_id: "app-1".to_owned(),
        redirect_uri: "https://app.example/cb".to_owned(),
        scope: "openid profile".to_owned(),
        nonce: Some("n-1".to_owned()),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned()),
        code_challenge_method: Some("S256".to_owned()),
        created_at: 100,
        expires_at,
    }
}

/// A user's recent sign-ins as a sign-in with a session reads them: given the user's current
/// version, so the rows kept in memory serve it wherever they are current.
pub async fn recent(
    store: &Store,
    user_id: &str,
    limit: i64,
) -> Result<Vec<Arc<tenantd_store::RecentSignIn>>, tenantd_store::StoreError> {
    let version = store.sign_ins_version(user_id).await?;
    store.recent_sign_ins(user_id, Some(version), limit).await
}

/// A high, at-risk user-risk row for `user_id`, changed at `updated_at`.
pub fn high_risk(user_id: &str, updated_at: i64) -> tenantd_store::UserRiskRecord {
    tenantd_store::UserRiskRecord {
        user_id: user_id.to_owned(),
        level: "high".to_owned(),
        state: "atRisk".to_owned(),
        detail: "none".to_owned(),
        updated_at,
    }
}

/// Puts `user_id` at [`high_risk`] and logs one sign-in of theirs (which moves the version of
/// their sign-ins on): what the reads of a user with their risk must then return.
pub async fn at_high_risk_after_a_sign_in(
    store: &tenantd_store::Store,
    user_id: &str,
) -> tenantd_store::UserRiskRecord {
    let risk = high_risk(user_id, 990);
    store.set_user_risk(&risk, "system", None).await.unwrap();
    let mut log = sign_ins::log(1);
    log.user_id = Some(user_id.to_owned());
    store.insert_sign_in(&log).await.unwrap();
    risk
}

pub fn refresh(hash: &str, grant_id: &str, expires_at: i64) -> RefreshToken {
    RefreshToken {
        token_hash: hash.to_owned(),
        grant_id: grant_id.to_owned(),
        client_id: "app-1".to_owned(),
        scope: "openid profile".to_owned(),
        created_at: 100,
        expires_at,
        used_at: None,
    }
}

/// Stores `grant` the way the server does: by redeeming a sealed code that carries it (its
/// session, if any, must be live). No first refresh token.
pub async fn create_grant(store: &Store, grant: &Grant) {
    let redeemed = store
        .redeem_sealed_code(&code(&grant.id, 160), grant, 120, |_, _| {
            Ok::<_, std::convert::Infallible>(None)
        })
        .await
        .unwrap();
    assert!(
        matches!(redeemed, Ok(CodeRedemption::Redeemed)),
        "{redeemed:?}"
    );
}

/// A user `u1` with a live session `s1` (expiring at 10_000) and a grant `g1` of it (not
/// offline), redeemed from a sealed code at 120.
pub async fn user_with_grant(store: &Store) {
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    store
        .create_session(&session("s1", "u1", 10_000))
        .await
        .unwrap();
    create_grant(store, &grant("g1", "u1", Some("s1"), false)).await;
}
