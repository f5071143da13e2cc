//! User risk at the home tenant: detections, the state machine wired to the store, and the
//! detectors (leaked credentials at sign-in and on import, password spray, threat
//! intelligence). Handlers, the CLI and the lab call this module; they never write risk
//! themselves.
//!
//! The seed: "The user risk for B2B collaboration users is evaluated at their home directory."
//! A guest's risk belongs to their home tenant, so nothing here raises, dismisses or remediates
//! a guest's risk ([`risk::ensure_risk_is_ours`]).
//!
//! Every change is one store transaction (detection + status + history, or status + history +
//! resolved detections), guarded by the status it was computed from: a concurrent change makes
//! it recompute instead of overwriting (see [`store::Store::apply_risk_changes`]).
//!
//! ## Leak fingerprints
//!
//! Leaked-credential corpora are lists of SHA-1 hashes (the k-anonymity "range" files) or
//! credential pairs. To check users' *current* passwords against an import offline, without
//! their clear passwords, tenantd keeps per user a **leak fingerprint** =
//! HMAC-SHA256(tenant key, SHA-1 of the password), refreshed whenever the password is set or
//! verified. An import computes the same HMAC over each imported SHA-1 and looks the users up
//! by fingerprint. Why keyed, and why not the SHA-1 itself: a bare unsalted SHA-1 column would be
//! joinable against public hash lists and rainbow tables straight from a database dump, and
//! would make every user's argon2 hash pointless. The HMAC key is a random 256-bit tenant secret
//! created on first use (`tenant_secrets`); it lives in the database so every replica and the
//! CLI share it. Residual risk, stated plainly: someone holding the *whole* database (key
//! included) can test password guesses against fingerprints at HMAC speed, much faster than
//! against argon2. Moving the key out of the database (config or KMS) is the upgrade path;
//! nothing else would change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;

use aws_lc_rs::{digest, hmac};
use risk::{
    Actor, AgeingConfig, Detection, DetectionState, DetectionTimingType, RiskEventType, RiskLevel,
    RiskTransitionError, SOURCE_IDENTITY_PROTECTION, UserRiskEvent, UserRiskStatus,
    aggregate_user_risk, from_wire, transition,
};
use store::{
    DetectionRecord, LeakedCredential, RiskChange, Store, StoreError, User, UserRiskRecord,
    UserType, UserWithRisk,
};
use time::OffsetDateTime;

use crate::codes;
use crate::passwords::Passwords;
use crate::{Clock, Directory};

/// Sign-in failures that count towards password spray: wrong password, unknown user (as the
/// sign-in log stores them).
pub const SPRAY_ERROR_CODES: [i64; 2] = [
    codes::INVALID_USERNAME_OR_PASSWORD as i64,
    codes::USER_NOT_FOUND as i64,
];

/// The name of the HMAC key of leak fingerprints in `tenant_secrets`.
const LEAK_KEY: &str = "leak-fingerprint-key";

/// How many times a change computed from a status that changed meanwhile is recomputed.
const RETRIES: usize = 5;

/// Password spray: one source failing against many accounts (`[risk.password_spray]`-shaped;
/// the defaults until the config carries it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordSprayConfig {
    /// Distinct accounts that must have failed from one IP within the window.
    pub min_accounts: i64,
    /// The window, seconds.
    pub window_secs: i64,
}

impl Default for PasswordSprayConfig {
    fn default() -> Self {
        Self {
            min_accounts: 10,
            window_secs: 3600,
        }
    }
}

/// Why a user-risk action did not happen. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum UserRiskError {
    /// No user with this id (or email).
    #[error("no user {0}")]
    UnknownUser(String),
    /// The state machine refused (no risk to act on, a guest's risk, ...).
    #[error(transparent)]
    Refused(#[from] RiskTransitionError),
    /// Detection events go through [`raise`], not [`remediate`].
    #[error("{0} is not a remediation or admin action")]
    NotAnAction(&'static str),
    /// The user's risk kept changing under us.
    #[error("the user risk of {0} kept changing; try again")]
    Busy(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// For callers that only read risk (the gate, the `user_risk` claim): a refusal of the state
/// machine cannot happen there, so anything but a storage error is unexpected data.
impl From<UserRiskError> for StoreError {
    fn from(e: UserRiskError) -> StoreError {
        match e {
            UserRiskError::Store(e) => e,
            other => StoreError::Corrupt(other.to_string()),
        }
    }
}

/// The home tenant's user-risk engine over one store. [`Home::of`] builds it from a running
/// tenant; the CLI builds one from a config.
#[derive(Clone, Copy)]
pub struct Home<'a> {
    /// Storage.
    pub store: &'a Store,
    /// Password hashing (verifying imported credential pairs).
    pub passwords: &'a Passwords,
    /// Where "now" comes from.
    pub clock: &'a dyn Clock,
    /// Ageing of low detections.
    pub ageing: &'a AgeingConfig,
    /// Password spray thresholds.
    pub spray: &'a PasswordSprayConfig,
    /// The tenant's id (the metrics' `tenant` label).
    pub tenant: &'a str,
    /// The tenant's issuer (`iss` of the Shared Signals events risk changes cause).
    pub issuer: &'a str,
}

impl fmt::Debug for Home<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Home")
            .field("ageing", self.ageing)
            .field("spray", self.spray)
            .finish_non_exhaustive()
    }
}

/// A user's current risk (see [`Home::current`]).
pub async fn current(dir: &Directory, user_id: &str) -> Result<UserRiskStatus, UserRiskError> {
    Home::of(dir).current(user_id).await
}

/// [`current`] from the user's risk row as just read with their session (`None`: they have
/// none), so a single sign-on does not read it again.
pub async fn current_from(
    dir: &Directory,
    user_id: &str,
    read: Option<UserRiskRecord>,
) -> Result<UserRiskStatus, UserRiskError> {
    Ok(Home::of(dir)
        .current_since_from(user_id, Some(read))
        .await?
        .status)
}

/// A user's current risk and when it last changed (see [`Home::current_since`]).
pub async fn current_since(dir: &Directory, user_id: &str) -> Result<RiskSince, UserRiskError> {
    Home::of(dir).current_since(user_id).await
}

/// A user's current risk and when it last changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiskSince {
    /// The risk.
    pub status: UserRiskStatus,
    /// Unix seconds of the last change; `None` if the user's risk was never touched.
    pub updated_at: Option<i64>,
}

/// Record a detection and move the user's risk (see [`Home::raise`]).
pub async fn raise(
    dir: &Directory,
    user_id: &str,
    detection: Detection,
) -> Result<UserRiskStatus, UserRiskError> {
    Home::of(dir).raise(user_id, detection).await
}

/// A partner's report that it blocked one of this tenant's users signing in there as a guest
/// (the reverse stream of shared signals): what no home is told today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerReport {
    /// Who reports: the partner's app here (its client id), the detection's `source`.
    pub partner: String,
    /// The partner's name, for people.
    pub partner_name: String,
    /// When the partner blocked the sign-in, unix seconds.
    pub blocked_at: i64,
    /// The policy that blocked it, in the partner's words.
    pub policy: String,
    /// The sign-in's risk level at the partner.
    pub sign_in_risk: RiskLevel,
    /// The sign-in's detections at the partner (`riskEventType` names).
    pub detections: Vec<String>,
    /// The client's IP as the partner saw it.
    pub ip: Option<IpAddr>,
}

impl PartnerReport {
    /// The detection's explanation, in plain words.
    pub fn explanation(&self) -> String {
        let when = datetime(self.blocked_at)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let detections = if self.detections.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.detections.join(", "))
        };
        format!(
            "{} blocked this user's sign-in there at {when}: {}; sign-in risk {}{detections}",
            self.partner_name,
            self.policy,
            self.sign_in_risk.as_str(),
        )
    }
}

/// Records a partner's report of a block as a `partnerReportedRisk` detection, at the level
/// `[risk] partner_reported_risk_level` sets (`low` unless set): this tenant's own user-risk
/// policies decide what it leads to. The same partner reporting again while its detection
/// stands (the same sign-in retried) adds nothing.
pub async fn partner_reported(
    dir: &Directory,
    user_id: &str,
    report: &PartnerReport,
) -> Result<UserRiskStatus, UserRiskError> {
    let mut detection = new_detection(
        RiskEventType::PartnerReportedRisk,
        dir.config.risk.partner_reported_level(),
        DetectionTimingType::NearRealtime,
        report.ip,
        dir.now(),
        report.explanation(),
    );
    detection.source.clone_from(&report.partner);
    raise(dir, user_id, detection).await
}

/// Remediate, dismiss or confirm compromised (see [`Home::remediate`]).
pub async fn remediate(
    dir: &Directory,
    user_id: &str,
    event: UserRiskEvent,
    actor: Actor,
) -> Result<UserRiskStatus, UserRiskError> {
    Home::of(dir).remediate(user_id, event, actor).await
}

/// The sign-in page's hook after a correct password (see [`Home::after_password_verified`]).
pub async fn after_password_verified(
    dir: &Directory,
    read: &UserWithRisk,
    password: &str,
    ip: Option<IpAddr>,
) -> Result<UserRiskStatus, UserRiskError> {
    Home::of(dir)
        .after_password_verified(read, password, ip)
        .await
}

/// Every place that sets a password calls this (see [`Home::after_password_set`]).
pub async fn after_password_set(
    dir: &Directory,
    user_id: &str,
    password: &str,
) -> Result<(), UserRiskError> {
    Home::of(dir).after_password_set(user_id, password).await
}

/// Import one leaked-credentials file (see [`Home::import_leaked_files`]).
pub async fn import_leaked(
    home: &Home<'_>,
    file_name: &str,
    text: &str,
) -> Result<ImportReport, ImportError> {
    let file = parse_leaked(file_name, text)?;
    home.import_leaked_files(&[file]).await
}

/// Import one threat-intelligence file (see [`Home::import_threat_intel`]).
pub async fn import_threat_intel(
    home: &Home<'_>,
    file_name: &str,
    text: &str,
) -> Result<ThreatIntelReport, ImportError> {
    home.import_threat_intel(file_name, text).await
}

/// Unix seconds as ISO 8601 / RFC 3339 UTC (Graph's `DateTimeOffset` spelling).
pub fn iso(unix: i64) -> String {
    datetime(unix)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn datetime(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

/// The stored status as the risk crate's type; a user never touched has the default.
pub fn status_of(record: Option<&UserRiskRecord>) -> Result<UserRiskStatus, StoreError> {
    let Some(r) = record else {
        return Ok(UserRiskStatus::default());
    };
    let bad = |field: &str, v: &str| corrupt(format!("user_risk of {}: {field} {v:?}", r.user_id));
    Ok(UserRiskStatus {
        risk_level: from_wire(&r.level).ok_or_else(|| bad("level", &r.level))?,
        risk_state: from_wire(&r.state).ok_or_else(|| bad("state", &r.state))?,
        risk_detail: from_wire(&r.detail).ok_or_else(|| bad("detail", &r.detail))?,
    })
}

fn record_of(user_id: &str, status: UserRiskStatus, at: i64) -> UserRiskRecord {
    UserRiskRecord {
        user_id: user_id.to_owned(),
        level: status.risk_level.as_str().to_owned(),
        state: status.risk_state.as_str().to_owned(),
        detail: status.risk_detail.as_str().to_owned(),
        updated_at: at,
    }
}

/// A stored detection as the risk crate's type.
pub fn detection_of(r: &DetectionRecord) -> Result<Detection, StoreError> {
    let bad = |field: &str, v: &str| corrupt(format!("detection {}: {field} {v:?}", r.id));
    Ok(Detection {
        id: r.id.clone(),
        risk_event_type: from_wire(&r.risk_event_type)
            .ok_or_else(|| bad("risk_event_type", &r.risk_event_type))?,
        risk_level: from_wire(&r.risk_level).ok_or_else(|| bad("risk_level", &r.risk_level))?,
        detection_timing_type: from_wire(&r.detection_timing_type)
            .ok_or_else(|| bad("detection_timing_type", &r.detection_timing_type))?,
        source: r.source.clone(),
        ip_address: match &r.ip_address {
            Some(ip) => Some(ip.parse().map_err(|_| bad("ip_address", ip))?),
            None => None,
        },
        detected_date_time: datetime(r.detected_at),
        state: from_wire(&r.state).ok_or_else(|| bad("state", &r.state))?,
        explanation: r.explanation.clone(),
    })
}

fn detection_record(user_id: &str, d: &Detection) -> DetectionRecord {
    DetectionRecord {
        id: d.id.clone(),
        user_id: user_id.to_owned(),
        risk_event_type: d.risk_event_type.as_str().to_owned(),
        risk_level: d.risk_level.as_str().to_owned(),
        detection_timing_type: risk::to_wire(&d.detection_timing_type),
        source: d.source.clone(),
        ip_address: d.ip_address.map(|ip| ip.to_string()),
        detected_at: d.detected_date_time.unix_timestamp(),
        state: risk::to_wire(&d.state),
        explanation: d.explanation.clone(),
    }
}

/// How an actor is written in the risk history: `admin:<id>`, `user:<id>` or `system`.
pub fn actor_label(actor: &Actor) -> String {
    match actor {
        Actor::Admin(id) => format!("admin:{id}"),
        Actor::User(id) => format!("user:{id}"),
        Actor::System => "system".to_owned(),
    }
}

/// A new detection by tenantd's own engine, active, at `at`.
pub fn new_detection(
    risk_event_type: RiskEventType,
    risk_level: RiskLevel,
    timing: DetectionTimingType,
    ip_address: Option<IpAddr>,
    at: i64,
    explanation: String,
) -> Detection {
    Detection {
        id: uuid::Uuid::now_v7().to_string(),
        risk_event_type,
        risk_level,
        detection_timing_type: timing,
        source: SOURCE_IDENTITY_PROTECTION.to_owned(),
        ip_address,
        detected_date_time: datetime(at),
        state: DetectionState::Active,
        explanation,
    }
}

/// SHA-1 of a password, 40 uppercase hex digits (the corpus spelling).
pub fn password_sha1(password: &str) -> String {
    hex_upper(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, password.as_bytes()).as_ref())
}

fn hex_upper(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02X}");
        s
    })
}

/// The leak fingerprint of a password whose SHA-1 (uppercase hex) is `sha1`.
fn fingerprint(key: &hmac::Key, sha1: &str) -> String {
    hex_upper(hmac::sign(key, sha1.as_bytes()).as_ref())
}

fn is_remediation_without_risk_ok(event: &UserRiskEvent) -> bool {
    matches!(
        event,
        UserRiskEvent::SecuredPasswordReset
            | UserRiskEvent::SecuredPasswordChange
            | UserRiskEvent::AdminGeneratedTemporaryPassword
    )
}

impl<'a> Home<'a> {
    /// The engine of a running tenant (its `[risk]` ageing and password-spray settings).
    pub fn of(dir: &'a Directory) -> Home<'a> {
        Home {
            store: &dir.store,
            passwords: &dir.passwords,
            clock: &*dir.clock,
            ageing: &dir.config.risk.ageing,
            spray: &dir.config.risk.password_spray,
            tenant: &dir.config.tenant_id,
            issuer: &dir.config.issuer,
        }
    }

    /// An engine over a store (the CLI), with the tenant's `[risk]` settings.
    pub fn new(
        store: &'a Store,
        passwords: &'a Passwords,
        clock: &'a dyn Clock,
        config: &'a crate::config::Config,
    ) -> Home<'a> {
        Home {
            store,
            passwords,
            clock,
            ageing: &config.risk.ageing,
            spray: &config.risk.password_spray,
            tenant: &config.tenant_id,
            issuer: &config.issuer,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The change with its CAEP `risk-level-change` event, written to the Shared Signals
    /// outbox in the change's own transaction (for the streams of partners the user is a
    /// guest at).
    fn with_signal(&self, mut change: RiskChange) -> RiskChange {
        let jti = uuid::Uuid::new_v4().simple().to_string();
        change.signals.push(crate::ssf::risk_signal(
            self.issuer,
            change.expected.as_ref(),
            &change.record,
            &jti,
        ));
        change
    }

    /// The user, refused if they are a guest (their risk is their home's).
    async fn ours(&self, user_id: &str) -> Result<User, UserRiskError> {
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| UserRiskError::UnknownUser(user_id.to_owned()))?;
        ensure_ours(&user)?;
        Ok(user)
    }

    async fn read(
        &self,
        user_id: &str,
    ) -> Result<(Option<UserRiskRecord>, UserRiskStatus), UserRiskError> {
        let record = self.store.user_risk(user_id).await?;
        let status = status_of(record.as_ref())?;
        Ok((record, status))
    }

    async fn active(&self, user_id: &str) -> Result<Vec<Detection>, UserRiskError> {
        let rows = self.store.active_detections(user_id).await?;
        Ok(rows.iter().map(detection_of).collect::<Result<_, _>>()?)
    }

    /// The user's current risk: the stored status, recomputed (a `levelRecomputed` line in the
    /// history) when detections aged out since it was stored. It is read on every sign-in, so
    /// it does not look the user up again: for an id that is no user it answers "no risk".
    pub async fn current(&self, user_id: &str) -> Result<UserRiskStatus, UserRiskError> {
        Ok(self.current_since(user_id).await?.status)
    }

    /// [`Home::current`] and when it last changed, from the same read.
    pub async fn current_since(&self, user_id: &str) -> Result<RiskSince, UserRiskError> {
        self.current_since_from(user_id, None).await
    }

    /// [`Home::current_since`], starting from `read` when the user's risk row was just read
    /// with something else (`Some(row)`, `Some(None)` for a user without one), so it is not
    /// read again; `None` reads it.
    async fn current_since_from(
        &self,
        user_id: &str,
        mut read: Option<Option<UserRiskRecord>>,
    ) -> Result<RiskSince, UserRiskError> {
        for _ in 0..RETRIES {
            let record = match read.take() {
                Some(record) => record,
                None => self.store.user_risk(user_id).await?,
            };
            let status = status_of(record.as_ref())?;
            let stored = RiskSince {
                status,
                updated_at: record.as_ref().map(|r| r.updated_at),
            };
            // Callers look the user up first; a user whose risk was never touched has none.
            if record.is_none() {
                return Ok(stored);
            }
            if status.risk_state != risk::RiskState::AtRisk {
                return Ok(stored);
            }
            let now = self.now();
            let level =
                aggregate_user_risk(&self.active(user_id).await?, datetime(now), self.ageing);
            if level == status.risk_level {
                return Ok(stored);
            }
            let t = transition(
                status,
                &UserRiskEvent::LevelRecomputed {
                    aggregated_level: level,
                },
                &Actor::System,
                datetime(now),
            )?;
            let change = RiskChange {
                signals: Vec::new(),
                record: record_of(user_id, t.status, now),
                expected: record,
                detection: None,
                resolve_active_to: None,
                actor: actor_label(&Actor::System),
                reason: Some(t.history.reason),
                audit: None,
            };
            let change = self.with_signal(change);
            match self.store.apply_risk_changes(&[change]).await {
                Ok(()) => {
                    return Ok(RiskSince {
                        status: t.status,
                        updated_at: Some(now),
                    });
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(UserRiskError::Busy(user_id.to_owned()))
    }

    /// Records `detection` for a member and moves their risk: aggregated with their active
    /// detections, `DetectionRaised`, stored with the status and its history atomically.
    /// Guests are refused (their risk is held by their home tenant).
    pub async fn raise(
        &self,
        user_id: &str,
        detection: Detection,
    ) -> Result<UserRiskStatus, UserRiskError> {
        let mut statuses = self
            .raise_many(vec![(user_id.to_owned(), detection)])
            .await?;
        Ok(statuses.pop().unwrap_or_default())
    }

    /// [`Home::raise`] for several users (each at most once) in one transaction: all or none.
    pub async fn raise_many(
        &self,
        detections: Vec<(String, Detection)>,
    ) -> Result<Vec<UserRiskStatus>, UserRiskError> {
        for (user_id, _) in &detections {
            self.ours(user_id).await?;
        }
        for _ in 0..RETRIES {
            let now = self.now();
            let mut changes = Vec::with_capacity(detections.len());
            let mut statuses = Vec::with_capacity(detections.len());
            for (user_id, detection) in &detections {
                let (record, status) = self.read(user_id).await?;
                let mut counted = self.active(user_id).await?;
                // The same sign-in retried (a guest's blocked retries reaching the home) must not
                // inflate the user's detections: one of a kind per window.
                if detection.repeats(&counted) {
                    statuses.push(status);
                    continue;
                }
                counted.push(detection.clone());
                let level = aggregate_user_risk(&counted, datetime(now), self.ageing);
                let t = transition(
                    status,
                    &UserRiskEvent::DetectionRaised {
                        risk_event_type: detection.risk_event_type,
                        aggregated_level: level,
                    },
                    &Actor::System,
                    datetime(now),
                )?;
                statuses.push(t.status);
                changes.push(RiskChange {
                    signals: Vec::new(),
                    record: record_of(user_id, t.status, now),
                    expected: record,
                    detection: Some(detection_record(user_id, detection)),
                    resolve_active_to: None,
                    actor: actor_label(&Actor::System),
                    reason: Some(format!("{} ({})", t.history.reason, detection.explanation)),
                    audit: None,
                });
            }
            if changes.is_empty() {
                return Ok(statuses);
            }
            let changes: Vec<RiskChange> =
                changes.into_iter().map(|c| self.with_signal(c)).collect();
            match self.store.apply_risk_changes(&changes).await {
                Ok(()) => {
                    for c in &changes {
                        if let Some(d) = &c.detection {
                            tracing::info!(user = %c.record.user_id, risk_event_type = %d.risk_event_type, level = %d.risk_level, "risk detection raised");
                            metrics::counter!(
                                "tenantd_risk_detections_total",
                                "tenant" => self.tenant.to_owned(),
                                "type" => d.risk_event_type.clone(),
                                "timing" => d.detection_timing_type.clone()
                            )
                            .increment(1);
                        }
                    }
                    return Ok(statuses);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(StoreError::NotFound) => {
                    return Err(UserRiskError::UnknownUser(
                        detections
                            .iter()
                            .map(|(u, _)| u.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(UserRiskError::Busy(
            detections
                .first()
                .map(|(u, _)| u.clone())
                .unwrap_or_default(),
        ))
    }

    /// A remediation or admin action on a member's risk: `SecuredPasswordReset`,
    /// `SecuredPasswordChange` (by the user), `AdminGeneratedTemporaryPassword`,
    /// `AdminDismissed`, `AdminConfirmedCompromised` (by an admin). Remediation and dismissal
    /// mark the active detections `remediated`/`dismissed` in the same transaction; confirming
    /// compromised records an `adminConfirmedUserCompromised` detection with the status.
    ///
    /// A password remediation when there is no risk is a no-op returning the unchanged status;
    /// an admin dismissal with no risk is [`RiskTransitionError::NoRiskToActOn`].
    pub async fn remediate(
        &self,
        user_id: &str,
        event: UserRiskEvent,
        actor: Actor,
    ) -> Result<UserRiskStatus, UserRiskError> {
        self.remediate_audited(user_id, event, actor, None).await
    }

    /// [`Home::remediate`] with the directory audit line of an admin's action, built from the
    /// status the change leads to and written in the change's own transaction: the change and
    /// its audit line are stored together or not at all.
    pub async fn remediate_audited(
        &self,
        user_id: &str,
        event: UserRiskEvent,
        actor: Actor,
        audit: Option<&(dyn Fn(&UserRiskStatus) -> store::DirectoryAudit + Sync)>,
    ) -> Result<UserRiskStatus, UserRiskError> {
        let resolve = match &event {
            UserRiskEvent::DetectionRaised { .. } => {
                return Err(UserRiskError::NotAnAction("detectionRaised"));
            }
            UserRiskEvent::LevelRecomputed { .. } => {
                return Err(UserRiskError::NotAnAction("levelRecomputed"));
            }
            UserRiskEvent::AdminConfirmedCompromised => None,
            // A false positive no longer counts, as a dismissed detection.
            UserRiskEvent::AdminDismissed | UserRiskEvent::AdminConfirmedSafe => {
                Some(DetectionState::Dismissed)
            }
            _ => Some(DetectionState::Remediated),
        };
        self.ours(user_id).await?;
        for _ in 0..RETRIES {
            let now = self.now();
            let (record, status) = self.read(user_id).await?;
            let t = match transition(status, &event, &actor, datetime(now)) {
                Ok(t) => t,
                Err(RiskTransitionError::NoRiskToActOn { .. })
                    if is_remediation_without_risk_ok(&event) =>
                {
                    return Ok(status);
                }
                Err(e) => return Err(e.into()),
            };
            let detection = matches!(event, UserRiskEvent::AdminConfirmedCompromised).then(|| {
                let mut d = new_detection(
                    RiskEventType::AdminConfirmedUserCompromised,
                    RiskLevel::High,
                    DetectionTimingType::Offline,
                    None,
                    now,
                    format!("{} confirmed the user compromised", actor_label(&actor)),
                );
                d.source = "admin".to_owned();
                detection_record(user_id, &d)
            });
            let change = RiskChange {
                signals: Vec::new(),
                record: record_of(user_id, t.status, now),
                expected: record,
                detection,
                resolve_active_to: resolve.map(|s| risk::to_wire(&s)),
                actor: actor_label(&actor),
                reason: Some(t.history.reason),
                audit: audit.map(|line| line(&t.status)),
            };
            let change = self.with_signal(change);
            match self.store.apply_risk_changes(&[change]).await {
                Ok(()) => {
                    tracing::info!(user = %user_id, actor = %actor_label(&actor), state = %t.status.risk_state, "user risk changed");
                    if ends_sign_ins(&event) {
                        self.end_sign_ins(user_id, now).await?;
                    }
                    return Ok(t.status);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(UserRiskError::Busy(user_id.to_owned()))
    }

    /// Ends every session and grant (refresh tokens, and the access tokens tied to them) of
    /// the user at once: whoever holds them may be the attacker.
    async fn end_sign_ins(&self, user_id: &str, now: i64) -> Result<(), StoreError> {
        let jti = uuid::Uuid::new_v4().simple().to_string();
        let revoked = crate::ssf::user_signal(
            self.issuer,
            user_id,
            &protocol::set::Event::session_revoked("policy", now),
            &jti,
            now,
        );
        let (sessions, grants) = self
            .store
            .end_user_sign_ins_signalled(user_id, now, &[revoked])
            .await?;
        tracing::info!(user = %user_id, sessions, grants, "sessions and grants revoked");
        Ok(())
    }

    async fn leak_key(&self) -> Result<hmac::Key, StoreError> {
        let key = self
            .store
            .tenant_secret(LEAK_KEY, &crate::secrets::random_token(), self.now())
            .await?;
        Ok(hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()))
    }

    /// Stores the fingerprint of the password whose SHA-1 is `sha1`, if it changed. Returns
    /// when the fingerprint last changed: from then on detections are about this password.
    /// `read` is the stored fingerprint when it was just read with the user (`Some(None)`: they
    /// have none); `None` reads it.
    async fn refresh_fingerprint(
        &self,
        user_id: &str,
        sha1: &str,
        read: Option<Option<(String, i64)>>,
    ) -> Result<i64, StoreError> {
        let fp = fingerprint(&self.leak_key().await?, sha1);
        let stored = match read {
            Some(stored) => stored,
            None => self.store.leak_fingerprint(user_id).await?,
        };
        match stored {
            Some((stored, since)) if stored == fp => Ok(since),
            _ => {
                let now = self.now();
                self.store.set_leak_fingerprint(user_id, &fp, now).await?;
                Ok(now)
            }
        }
    }

    /// Whether the user has a detection of `kind` (in any state) at or after `since`: this
    /// password (or this evidence) has been judged already, by a detection still active or by
    /// an admin's dismissal.
    async fn judged_since(
        &self,
        user_id: &str,
        kind: RiskEventType,
        since: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.store
            .latest_detection_since(user_id, kind.as_str(), since)
            .await
    }

    /// Every place that sets a password calls this: refreshes the user's leak fingerprint.
    pub async fn after_password_set(
        &self,
        user_id: &str,
        password: &str,
    ) -> Result<(), UserRiskError> {
        self.refresh_fingerprint(user_id, &password_sha1(password), None)
            .await?;
        Ok(())
    }

    /// The sign-in page calls this after a correct password: refreshes the fingerprint, raises
    /// **leakedCredentials** (high, realtime) when the password is in the corpus for this user
    /// and not already judged, and **passwordSpray** (high, realtime) when the sign-in's IP
    /// failed against at least `min_accounts` distinct accounts within the window (failures
    /// after this user's last passwordSpray detection only). Returns the resulting status: the
    /// risk read with the user (`read`) when neither was raised, so it is not read again; the
    /// fingerprint is compared with the one read with the user, too.
    pub async fn after_password_verified(
        &self,
        read: &UserWithRisk,
        password: &str,
        ip: Option<IpAddr>,
    ) -> Result<UserRiskStatus, UserRiskError> {
        let user = &read.user;
        let as_read = || self.current_since_from(&user.id, Some(read.user_risk.clone()));
        if user.user_type == UserType::Guest {
            return Ok(as_read().await?.status);
        }
        let mut raised = false;
        let sha1 = password_sha1(password);
        let since = self
            .refresh_fingerprint(&user.id, &sha1, Some(read.leak_fingerprint.clone()))
            .await?;
        let now = self.now();
        // The corpus first: a password is rarely in it, and then no judgement needs reading.
        if self.store.is_leaked(&sha1, &user.email).await?
            && self
                .judged_since(&user.id, RiskEventType::LeakedCredentials, since)
                .await?
                .is_none()
        {
            let d = new_detection(
                RiskEventType::LeakedCredentials,
                RiskLevel::High,
                DetectionTimingType::Realtime,
                ip,
                now,
                "the password used to sign in is in a leaked-credentials list".to_owned(),
            );
            self.raise(&user.id, d).await?;
            raised = true;
        }
        if let Some(ip) = ip {
            let window_start = now - self.spray.window_secs;
            let ip_text = ip.to_string();
            let mut failed = self
                .store
                .failed_accounts_from_ip(&ip_text, window_start, &SPRAY_ERROR_CODES)
                .await?;
            // Counting only the failures after the user's last detection can only lower the
            // count, so that detection is read only when the whole window reaches the bar.
            if failed >= self.spray.min_accounts
                && let Some(last) = self
                    .judged_since(&user.id, RiskEventType::PasswordSpray, window_start)
                    .await?
            {
                failed = self
                    .store
                    .failed_accounts_from_ip(&ip_text, last + 1, &SPRAY_ERROR_CODES)
                    .await?;
            }
            if failed >= self.spray.min_accounts {
                let d = new_detection(
                    RiskEventType::PasswordSpray,
                    RiskLevel::High,
                    DetectionTimingType::Realtime,
                    Some(ip),
                    now,
                    format!(
                        "{ip} failed password sign-ins against {failed} accounts within {} s, then signed in to this one",
                        self.spray.window_secs
                    ),
                );
                self.raise(&user.id, d).await?;
                raised = true;
            }
        }
        if raised {
            self.current(&user.id).await
        } else {
            Ok(as_read().await?.status)
        }
    }

    /// Imports parsed leaked-credential files (validated beforehand, so a bad file never gets
    /// here): each file's entries in one transaction, then the **offline** detection: every
    /// member whose current password matches (fingerprint match for password-only entries;
    /// for a pair whose email is a member, fingerprint match or the pair's password verified
    /// against the member's argon2 hash) gets a leakedCredentials detection (high, offline),
    /// unless that password was already judged. The detections are one transaction.
    pub async fn import_leaked_files(
        &self,
        files: &[LeakedFile],
    ) -> Result<ImportReport, ImportError> {
        let now = self.now();
        let mut report = ImportReport::default();
        for f in files {
            let rows: Vec<LeakedCredential> = f
                .entries
                .iter()
                .map(|e| LeakedCredential {
                    sha1: e.sha1.clone(),
                    email: e.email.clone(),
                    count: e.count,
                })
                .collect();
            report.entries += rows.len() as u64;
            report.new += self
                .store
                .import_leaked_credentials(&rows, &f.name, now)
                .await?;
        }
        let key = self.leak_key().await?;
        // Fingerprint -> the entries' files, for password-only entries.
        let mut by_fp: BTreeMap<String, String> = BTreeMap::new();
        for f in files {
            for e in f.entries.iter().filter(|e| e.email.is_none()) {
                by_fp
                    .entry(fingerprint(&key, &e.sha1))
                    .or_insert_with(|| f.name.clone());
            }
        }
        let fps: Vec<String> = by_fp.keys().cloned().collect();
        let mut matched: BTreeMap<String, String> = BTreeMap::new();
        for (user_id, fp) in self.store.users_with_fingerprints(&fps).await? {
            let file = by_fp.get(&fp).cloned().unwrap_or_default();
            matched.entry(user_id).or_insert(file);
        }
        for f in files {
            for e in &f.entries {
                let (Some(email), Some(password)) = (&e.email, &e.password) else {
                    continue;
                };
                let Some(user) = self.store.user_by_email(email).await? else {
                    continue;
                };
                if user.user_type == UserType::Guest || matched.contains_key(&user.id) {
                    continue;
                }
                let fp_match = self
                    .store
                    .leak_fingerprint(&user.id)
                    .await?
                    .is_some_and(|(fp, _)| fp == fingerprint(&key, &e.sha1));
                let hit = fp_match
                    || self
                        .passwords
                        .verify(password.expose(), user.password_hash.as_deref())
                        .await;
                if hit {
                    if !fp_match {
                        self.refresh_fingerprint(&user.id, &e.sha1, None).await?;
                    }
                    matched.insert(user.id.clone(), f.name.clone());
                }
            }
        }
        let mut detections = Vec::new();
        for (user_id, file) in matched {
            let Some(user) = self.store.user_by_id(&user_id).await? else {
                continue;
            };
            if user.user_type == UserType::Guest {
                continue;
            }
            let since = self
                .store
                .leak_fingerprint(&user_id)
                .await?
                .map_or(0, |(_, t)| t);
            if self
                .judged_since(&user_id, RiskEventType::LeakedCredentials, since)
                .await?
                .is_some()
            {
                report.already_flagged += 1;
                continue;
            }
            // Dated now, not at the start of the import: a fingerprint refreshed above must
            // not be newer than the detection judging it, or a re-import would flag it again.
            let d = new_detection(
                RiskEventType::LeakedCredentials,
                RiskLevel::High,
                DetectionTimingType::Offline,
                None,
                self.now(),
                format!("the user's current password is in the leaked-credentials import {file}"),
            );
            detections.push((user_id, d));
        }
        report.users_flagged = detections.len() as u64;
        if !detections.is_empty() {
            self.raise_many(detections).await?;
        }
        Ok(report)
    }

    /// Imports a threat-intelligence file: one user id or email per line (`#` comments,
    /// blank lines ignored). Every line must name a member of this tenant (an error names the
    /// line otherwise, and nothing changes); each gets an investigationsThreatIntelligence
    /// detection (high, offline) unless one is active already, all in one transaction.
    pub async fn import_threat_intel(
        &self,
        file_name: &str,
        text: &str,
    ) -> Result<ThreatIntelReport, ImportError> {
        let mut users: Vec<(String, usize)> = Vec::new();
        let mut seen = BTreeSet::new();
        for (n, raw) in text.lines().enumerate() {
            let line_no = n + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |message: String| ImportError::Line {
                file: file_name.to_owned(),
                line: line_no,
                message,
            };
            if line.split_whitespace().count() != 1 {
                return Err(bad(format!(
                    "expected one user id or email per line, found {line:?}"
                )));
            }
            let user = if line.contains('@') {
                self.store.user_by_email(line).await?
            } else {
                self.store.user_by_id(line).await?
            };
            let Some(user) = user else {
                return Err(bad(format!("no user with the id or email {line:?}")));
            };
            if let Err(e) = ensure_ours(&user) {
                return Err(bad(format!("{line}: {e}")));
            }
            if seen.insert(user.id.clone()) {
                users.push((user.id, line_no));
            }
        }
        let now = self.now();
        let mut report = ThreatIntelReport::default();
        let mut detections = Vec::new();
        for (user_id, line_no) in users {
            let active = self.active(&user_id).await.map_err(ImportError::Risk)?;
            if active
                .iter()
                .any(|d| d.risk_event_type == RiskEventType::InvestigationsThreatIntelligence)
            {
                report.already_flagged += 1;
                continue;
            }
            detections.push((
                user_id,
                new_detection(
                    RiskEventType::InvestigationsThreatIntelligence,
                    RiskLevel::High,
                    DetectionTimingType::Offline,
                    None,
                    now,
                    format!("named by threat intelligence ({file_name}:{line_no})"),
                ),
            ));
        }
        report.users_flagged = detections.len() as u64;
        if !detections.is_empty() {
            self.raise_many(detections).await?;
        }
        Ok(report)
    }
}

/// Whether a risk action means the user's credentials may be in someone else's hands, so
/// their sessions and refresh tokens must end now: confirmed compromised, or a password reset
/// (the old password is no longer theirs alone).
fn ends_sign_ins(event: &UserRiskEvent) -> bool {
    matches!(
        event,
        UserRiskEvent::AdminConfirmedCompromised
            | UserRiskEvent::AdminGeneratedTemporaryPassword
            | UserRiskEvent::SecuredPasswordReset
    )
}

/// Refuses a guest: their risk is held by their home tenant (the seed's limitation).
pub fn ensure_ours(user: &User) -> Result<(), RiskTransitionError> {
    let kind = match user.user_type {
        UserType::Member => risk::UserType::Member,
        UserType::Guest => risk::UserType::Guest,
    };
    risk::ensure_risk_is_ours(kind, user.partner_id.as_deref())
}

// ---- imports ----

/// What a leaked-credentials import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Entries read (after de-duplication within each file, padding lines skipped).
    pub entries: u64,
    /// Entries the corpus did not hold before.
    pub new: u64,
    /// Members who got a leakedCredentials detection.
    pub users_flagged: u64,
    /// Members whose current password matched but was already judged.
    pub already_flagged: u64,
}

/// What a threat-intelligence import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreatIntelReport {
    /// Members who got a detection.
    pub users_flagged: u64,
    /// Members with an active threat-intelligence detection already.
    pub already_flagged: u64,
}

/// Why an import did not happen. A parse error means nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A line is not what the file's format expects.
    #[error("{file}:{line}: {message}")]
    Line {
        /// The file name.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What was expected.
        message: String,
    },
    /// Raising the detections failed.
    #[error(transparent)]
    Risk(#[from] UserRiskError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A clear password from a credential-pair list: kept only in memory, while importing, to
/// verify against the named user's argon2 hash. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClearPassword(String);

impl ClearPassword {
    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClearPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One parsed corpus entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakedEntry {
    /// SHA-1 of the password, 40 uppercase hex digits.
    pub sha1: String,
    /// For a credential pair, the lowercased email.
    pub email: Option<String>,
    /// How often the source saw it (1 when it does not say).
    pub count: i64,
    /// For a credential pair, the password (never stored).
    pub password: Option<ClearPassword>,
}

/// The formats of a leaked-credentials file, detected from its first entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakedFormat {
    /// A k-anonymity range file: `SUFFIX:COUNT`, 35 hex digits, the 5-digit prefix being the
    /// file name's stem (`5BAA6.txt`).
    Range,
    /// Full hashes: `HASH:COUNT` or `HASH`, 40 hex digits.
    Hashes,
    /// Credential pairs: `email:password`.
    Pairs,
}

/// A validated leaked-credentials file, ready to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakedFile {
    /// The file name (kept as each new entry's source).
    pub name: String,
    /// Its format.
    pub format: LeakedFormat,
    /// Its entries, de-duplicated.
    pub entries: Vec<LeakedEntry>,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The 5-hex-digit prefix a range file is named after (`5BAA6.txt`, `dir/5baa6`).
fn range_prefix(file_name: &str) -> Option<String> {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let stem = base.split('.').next().unwrap_or(base);
    is_hex(stem, 5).then(|| stem.to_ascii_uppercase())
}

fn parse_count(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses and validates a leaked-credentials file. The format is detected from the first
/// entry (blank lines and `#` comments are skipped) and every line must follow it; the first
/// bad line is an error naming `file:line` and what was expected. Range padding lines (count
/// 0) are skipped. Passwords of pairs are hashed here; the clear password is kept in memory
/// only, to verify against the named user's hash.
pub fn parse_leaked(file_name: &str, text: &str) -> Result<LeakedFile, ImportError> {
    let bad = |line: usize, message: String| ImportError::Line {
        file: file_name.to_owned(),
        line,
        message,
    };
    let mut format = None;
    let mut entries: Vec<LeakedEntry> = Vec::new();
    let mut index: HashMap<(String, Option<String>), usize> = HashMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = raw.trim_end_matches('\r');
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (left, right) = match trimmed.split_once(':') {
            Some((l, r)) => (l.trim(), Some(r)),
            None => (trimmed, None),
        };
        let fmt = match format {
            Some(f) => f,
            None => {
                let detected = if left.contains('@') && right.is_some() {
                    LeakedFormat::Pairs
                } else if is_hex(left, 40) {
                    LeakedFormat::Hashes
                } else if is_hex(left, 35) && right.is_some() {
                    if range_prefix(file_name).is_none() {
                        return Err(bad(
                            line_no,
                            "a 35-hex-digit hash suffix needs the file to be named after its \
                             5-hex-digit prefix (e.g. 5BAA6.txt)"
                                .to_owned(),
                        ));
                    }
                    LeakedFormat::Range
                } else {
                    return Err(bad(
                        line_no,
                        "expected SUFFIX:COUNT (35 hex digits, in a file named after its 5-hex-digit prefix), \
                         HASH:COUNT or HASH (40 hex digits), or email:password"
                            .to_owned(),
                    ));
                };
                format = Some(detected);
                detected
            }
        };
        let entry = match fmt {
            LeakedFormat::Range => {
                let expected = "expected SUFFIX:COUNT (35 hex digits, a colon, a count), like the rest of this range file";
                let (Some(count), true) =
                    (right.map(str::trim).and_then(parse_count), is_hex(left, 35))
                else {
                    return Err(bad(line_no, expected.to_owned()));
                };
                if count == 0 {
                    continue; // padding
                }
                LeakedEntry {
                    sha1: format!(
                        "{}{}",
                        range_prefix(file_name).unwrap_or_default(),
                        left.to_ascii_uppercase()
                    ),
                    email: None,
                    count,
                    password: None,
                }
            }
            LeakedFormat::Hashes => {
                let expected =
                    "expected HASH:COUNT or HASH (40 hex digits), like the rest of this file";
                if !is_hex(left, 40) {
                    return Err(bad(line_no, expected.to_owned()));
                }
                let count = match right.map(str::trim) {
                    None => 1,
                    Some(c) => match parse_count(c) {
                        Some(0) => continue,
                        Some(c) => c,
                        None => return Err(bad(line_no, expected.to_owned())),
                    },
                };
                LeakedEntry {
                    sha1: left.to_ascii_uppercase(),
                    email: None,
                    count,
                    password: None,
                }
            }
            LeakedFormat::Pairs => {
                let expected = "expected email:password (an email address, a colon, a non-empty password), like the rest of this file";
                let Some((email, password)) = line.split_once(':') else {
                    return Err(bad(line_no, expected.to_owned()));
                };
                let email = email.trim().to_lowercase();
                if !crate::plausible_email(&email) || password.is_empty() {
                    return Err(bad(line_no, expected.to_owned()));
                }
                LeakedEntry {
                    sha1: password_sha1(password),
                    email: Some(email),
                    count: 1,
                    password: Some(ClearPassword(password.to_owned())),
                }
            }
        };
        let key = (entry.sha1.clone(), entry.email.clone());
        match index.get(&key) {
            Some(&i) => {
                if let Some(e) = entries.get_mut(i) {
                    e.count = e.count.saturating_add(entry.count);
                }
            }
            None => {
                index.insert(key, entries.len());
                entries.push(entry);
            }
        }
    }
    Ok(LeakedFile {
        name: file_name.to_owned(),
        format: format.unwrap_or(LeakedFormat::Hashes),
        entries,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn line_error(r: Result<LeakedFile, ImportError>) -> (String, usize, String) {
        match r {
            Err(ImportError::Line {
                file,
                line,
                message,
            }) => (file, line, message),
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn sha1_is_upper_hex_of_the_password() {
        // The example of the published range API: "password" -> 5BAA6...
        assert_eq!(
            password_sha1("password"),
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"
        );
    }

    #[test]
    fn range_files_take_their_prefix_from_the_file_name() {
        let text = "# range 5BAA6\n1E4C9B93F3F0682250B6CF8331B7EE68FD8:3861493\r\n\
                    0018A45C4D1DEF81644B54AB7F969B88D65:0\n\
                    00d4f6e8fa6eecad2a3aa415eec418d38ec:2\n";
        let f = parse_leaked("intel/5baa6.txt", text).unwrap();
        assert_eq!(f.format, LeakedFormat::Range);
        assert_eq!(f.entries.len(), 2, "the count-0 padding line is skipped");
        assert_eq!(f.entries[0].sha1, password_sha1("password"));
        assert_eq!(f.entries[0].count, 3_861_493);
        assert_eq!(
            f.entries[1].sha1,
            "5BAA600D4F6E8FA6EECAD2A3AA415EEC418D38EC"
        );
    }

    #[test]
    fn range_suffix_without_a_prefix_file_name_is_refused() {
        let (file, line, msg) = line_error(parse_leaked(
            "leaks.txt",
            "\n1E4C9B93F3F0682250B6CF8331B7EE68FD8:3\n",
        ));
        assert_eq!((file.as_str(), line), ("leaks.txt", 2));
        assert!(msg.contains("5BAA6.txt"), "{msg}");
    }

    #[test]
    fn full_hash_lists_with_or_without_counts() {
        let text = "5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8:10\n\
                    7C4A8D09CA3762AF61E59520943DC26494F8941B\n\
                    5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:5\n";
        let f = parse_leaked("hashes.txt", text).unwrap();
        assert_eq!(f.format, LeakedFormat::Hashes);
        assert_eq!(f.entries.len(), 2, "duplicates merge");
        assert_eq!(f.entries[0].count, 15);
        assert_eq!(f.entries[1].count, 1);
        assert!(f.entries.iter().all(|e| e.email.is_none()));
    }

    #[test]
    fn credential_pairs_are_hashed_and_the_password_never_printed() {
        let text = "# pairs\nBob@Contoso.test:bob-lab-password\nx@y.test:pass:with:colons\n";
        let f = parse_leaked("pairs.txt", text).unwrap();
        assert_eq!(f.format, LeakedFormat::Pairs);
        assert_eq!(f.entries[0].email.as_deref(), Some("bob@contoso.test"));
        assert_eq!(f.entries[0].sha1, password_sha1("bob-lab-password"));
        assert_eq!(f.entries[1].sha1, password_sha1("pass:with:colons"));
        let debug = format!("{f:?}");
        assert!(!debug.contains("bob-lab-password"), "{debug}");
    }

    #[test]
    fn a_bad_line_names_file_line_and_what_was_expected() {
        let cases = [
            (
                "5BAA6.txt",
                "1E4C9B93F3F0682250B6CF8331B7EE68FD8:1\nnot-a-suffix:2\n",
                2,
                "SUFFIX:COUNT",
            ),
            (
                "5BAA6.txt",
                "1E4C9B93F3F0682250B6CF8331B7EE68FD8:1\n1E4C9B93F3F0682250B6CF8331B7EE68FD8:x\n",
                2,
                "SUFFIX:COUNT",
            ),
            (
                "h.txt",
                "7C4A8D09CA3762AF61E59520943DC26494F8941B\n# c\nbob@x.test:pw\n",
                3,
                "HASH",
            ),
            (
                "p.txt",
                "a@b.test:pw\n\nnot an email:pw\n",
                3,
                "email:password",
            ),
            ("p.txt", "a@b.test:pw\nc@d.test:\n", 2, "email:password"),
            ("x.txt", "hello world\n", 1, "expected"),
        ];
        for (name, text, want_line, want) in cases {
            let (file, line, msg) = line_error(parse_leaked(name, text));
            assert_eq!((file.as_str(), line), (name, want_line), "{text}");
            assert!(msg.contains(want), "{name}:{line}: {msg}");
        }
    }

    #[test]
    fn empty_and_comment_only_files_are_empty_imports() {
        assert!(parse_leaked("e.txt", "").unwrap().entries.is_empty());
        assert!(
            parse_leaked("e.txt", "# nothing\n\n")
                .unwrap()
                .entries
                .is_empty()
        );
    }

    #[test]
    fn fingerprints_depend_on_the_key() {
        let k1 = hmac::Key::new(hmac::HMAC_SHA256, b"key-one");
        let k2 = hmac::Key::new(hmac::HMAC_SHA256, b"key-two");
        let h = password_sha1("password");
        assert_eq!(fingerprint(&k1, &h), fingerprint(&k1, &h));
        assert_ne!(fingerprint(&k1, &h), fingerprint(&k2, &h));
        assert_eq!(fingerprint(&k1, &h).len(), 64);
    }
}
