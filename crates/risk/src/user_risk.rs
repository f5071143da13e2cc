//! User risk at the home tenant: aggregation of detections into a level, the user-risk state
//! machine, and the history every transition leaves behind.
//!
//! The seed: "The user risk for B2B collaboration users is evaluated at their home directory."
//! Only the home runs this module for a user; a resource reads the home's `user_risk` claim.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::{Duration, OffsetDateTime};

use crate::detection::Detection;
use crate::vocab::{RiskDetail, RiskEventType, RiskLevel, RiskState, UserType};

/// How long detections keep counting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct AgeingConfig {
    /// Low-level detections stop counting after this many days (Entra: 180).
    pub low_level_max_age_days: u32,
}

impl Default for AgeingConfig {
    fn default() -> Self {
        Self {
            low_level_max_age_days: 180,
        }
    }
}

impl AgeingConfig {
    pub fn low_level_max_age(&self) -> Duration {
        Duration::days(i64::from(self.low_level_max_age_days))
    }
}

/// User risk level = the highest level among detections that still count at `now`
/// (active, and for `low` not aged out). Dismissed and remediated detections stop counting.
pub fn aggregate_user_risk(
    detections: &[Detection],
    now: OffsetDateTime,
    ageing: &AgeingConfig,
) -> RiskLevel {
    detections
        .iter()
        .filter(|d| d.counts_at(now, ageing))
        .map(|d| d.risk_level)
        .max()
        .unwrap_or(RiskLevel::None)
}

/// What a user's risk is right now (Graph `riskyUser`'s risk fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UserRiskStatus {
    pub risk_level: RiskLevel,
    pub risk_state: RiskState,
    pub risk_detail: RiskDetail,
}

/// The home -> resource contract: the `user_risk` claim in ID tokens and
/// userinfo, released only to apps registered at the home as partner tenants.
///
/// ```json
/// "user_risk": { "level": "high", "state": "atRisk", "detail": "none", "updated_at": 1764000000 }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRiskClaim {
    pub level: RiskLevel,
    pub state: RiskState,
    pub detail: RiskDetail,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

impl UserRiskClaim {
    /// The claim for a user's current status (home side).
    pub fn new(status: UserRiskStatus, updated_at: OffsetDateTime) -> Self {
        Self {
            level: status.risk_level,
            state: status.risk_state,
            detail: status.risk_detail,
            updated_at: updated_at.unix_timestamp(),
        }
    }

    /// The user risk level a resource evaluates policies with: the claim's level when the
    /// partner entry trusts the partner's risk (`trust_user_risk`), `none` otherwise. The seed:
    /// "The user risk for B2B collaboration users is evaluated at their home directory" — the
    /// resource never computes it, it only reads (or ignores) this claim.
    pub fn effective_level(claim: Option<&UserRiskClaim>, trusted: bool) -> RiskLevel {
        match claim {
            Some(c) if trusted => match c.state {
                // Remediated and dismissed risk no longer counts, whatever level was sent.
                RiskState::Remediated | RiskState::Dismissed | RiskState::ConfirmedSafe => {
                    RiskLevel::None
                }
                _ => c.level,
            },
            _ => RiskLevel::None,
        }
    }
}

/// Who caused a transition (Graph `riskyUserHistoryItem.initiatedBy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "id")]
pub enum Actor {
    /// The user themself (SSPR, password change during sign-in).
    User(String),
    /// An administrator of this tenant.
    Admin(String),
    /// tenantd's detection engine or a scheduled job.
    System,
}

impl Actor {
    fn label(&self) -> String {
        match self {
            Actor::User(id) => format!("user {id}"),
            Actor::Admin(id) => format!("admin {id}"),
            Actor::System => "system".to_owned(),
        }
    }
}

/// Something that happened to a user's risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "event"
)]
pub enum UserRiskEvent {
    /// A new detection was recorded. `aggregated_level` is the user's level with it counted
    /// (see [`aggregate_user_risk`]).
    DetectionRaised {
        risk_event_type: RiskEventType,
        aggregated_level: RiskLevel,
    },
    /// Detections aged out (or were dismissed one by one) and the aggregated level changed.
    LevelRecomputed { aggregated_level: RiskLevel },
    /// The user reset their password through SSPR after verifying a registered method.
    SecuredPasswordReset,
    /// The user changed their password after MFA during a risky sign-in.
    SecuredPasswordChange,
    /// An admin set a temporary password that must be changed at next sign-in.
    AdminGeneratedTemporaryPassword,
    /// An admin dismissed the user's risk (the password is left alone).
    AdminDismissed,
    /// An admin confirmed the user compromised (level becomes `high`).
    AdminConfirmedCompromised,
    /// An admin confirmed the user's risky activity was theirs (a false positive): risk none,
    /// `confirmedSafe`; the password is left alone.
    AdminConfirmedSafe,
}

impl UserRiskEvent {
    fn name(&self) -> &'static str {
        match self {
            UserRiskEvent::DetectionRaised { .. } => "detectionRaised",
            UserRiskEvent::LevelRecomputed { .. } => "levelRecomputed",
            UserRiskEvent::SecuredPasswordReset => "securedPasswordReset",
            UserRiskEvent::SecuredPasswordChange => "securedPasswordChange",
            UserRiskEvent::AdminGeneratedTemporaryPassword => "adminGeneratedTemporaryPassword",
            UserRiskEvent::AdminDismissed => "adminDismissed",
            UserRiskEvent::AdminConfirmedCompromised => "adminConfirmedCompromised",
            UserRiskEvent::AdminConfirmedSafe => "adminConfirmedSafe",
        }
    }
}

/// One line of a user's risk history (Graph `riskyUserHistoryItem`, flattened).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RiskHistoryEntry {
    pub initiated_by: Actor,
    /// Plain-words reason: what happened and why the state moved.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risk_event_types: Vec<RiskEventType>,
    pub previous_state: RiskState,
    pub risk_level: RiskLevel,
    pub risk_state: RiskState,
    pub risk_detail: RiskDetail,
    #[serde(with = "time::serde::rfc3339")]
    pub risk_last_updated_date_time: OffsetDateTime,
}

/// The outcome of an allowed transition: the new status and the history line to store with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub status: UserRiskStatus,
    pub history: RiskHistoryEntry,
}

/// A transition the state machine refuses.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RiskTransitionError {
    #[error("cannot {event}: the user's risk state is {state}, there is no risk to act on")]
    NoRiskToActOn {
        event: &'static str,
        state: RiskState,
    },
    #[error("the user is already confirmed compromised")]
    AlreadyConfirmedCompromised,
    #[error("{event} needs an admin, not {actor}")]
    AdminOnly { event: &'static str, actor: String },
    #[error("{event} must be done by the user themself, not {actor}")]
    UserOnly { event: &'static str, actor: String },
    #[error("a detection with aggregated level none cannot put a user at risk")]
    NoLevel,
    #[error(
        "this user's risk is held by their home organization ({home_tenant}); \
         it can only be dismissed or remediated there"
    )]
    RiskHeldByHomeTenant { home_tenant: String },
}

/// The seed's limitation, in one place: "Administrators **cannot dismiss or remediate a risky
/// B2B collaboration user** in their resource directory. This limitation is due to
/// administrators in the resource directory not having access to the B2B user's home
/// directory."
///
/// Call before any admin risk action; for a guest it names the home tenant that owns the risk.
pub fn ensure_risk_is_ours(
    user_type: UserType,
    home_tenant: Option<&str>,
) -> Result<(), RiskTransitionError> {
    match user_type {
        UserType::Member => Ok(()),
        UserType::Guest => Err(RiskTransitionError::RiskHeldByHomeTenant {
            home_tenant: home_tenant.unwrap_or("the guest's home tenant").to_owned(),
        }),
    }
}

fn has_risk(state: RiskState) -> bool {
    matches!(state, RiskState::AtRisk | RiskState::ConfirmedCompromised)
}

/// The user-risk state machine: `none -> atRisk -> remediated | dismissed |
/// confirmedCompromised`, plus what Entra allows besides:
///
/// | event | from | to | detail |
/// |---|---|---|---|
/// | `DetectionRaised` | `none`, `atRisk`, `remediated`, `dismissed`, `confirmedSafe` | `atRisk` (level = aggregated) | `none` |
/// | `DetectionRaised` | `confirmedCompromised` | stays (level stays `high`) | unchanged |
/// | `LevelRecomputed` | `atRisk` | `atRisk`, or `none` when the level fell to `none` | `none` |
/// | `SecuredPasswordReset` (user) | `atRisk`, `confirmedCompromised` | `remediated` | `userPerformedSecuredPasswordReset` |
/// | `SecuredPasswordChange` (user) | `atRisk`, `confirmedCompromised` | `remediated` | `userPerformedSecuredPasswordChange` |
/// | `AdminGeneratedTemporaryPassword` (admin) | `atRisk`, `confirmedCompromised` | `remediated` | `adminGeneratedTemporaryPassword` |
/// | `AdminDismissed` (admin) | `atRisk`, `confirmedCompromised` | `dismissed` | `adminDismissedAllRiskForUser` |
/// | `AdminConfirmedCompromised` (admin) | any but `confirmedCompromised` | `confirmedCompromised` (`high`) | `adminConfirmedUserCompromised` |
/// | `AdminConfirmedSafe` (admin) | `atRisk`, `confirmedCompromised` | `confirmedSafe` | `adminConfirmedSigninSafe` |
///
/// Everything else is a typed [`RiskTransitionError`]. Remediation and dismissal set the level to
/// `none`; the caller also marks the user's active detections `remediated`/`dismissed` so a later
/// aggregation agrees. `LevelRecomputed` on a non-`atRisk` user is refused (nothing to recompute).
pub fn transition(
    current: UserRiskStatus,
    event: &UserRiskEvent,
    actor: &Actor,
    at: OffsetDateTime,
) -> Result<Transition, RiskTransitionError> {
    let from = current.risk_state;
    let name = event.name();
    let need_admin = || match actor {
        Actor::Admin(_) => Ok(()),
        other => Err(RiskTransitionError::AdminOnly {
            event: name,
            actor: other.label(),
        }),
    };
    let need_user = || match actor {
        Actor::User(_) => Ok(()),
        other => Err(RiskTransitionError::UserOnly {
            event: name,
            actor: other.label(),
        }),
    };
    let need_risk = || {
        if has_risk(from) {
            Ok(())
        } else {
            Err(RiskTransitionError::NoRiskToActOn {
                event: name,
                state: from,
            })
        }
    };

    let (status, reason, types) = match event {
        UserRiskEvent::DetectionRaised {
            risk_event_type,
            aggregated_level,
        } => {
            if *aggregated_level == RiskLevel::None {
                return Err(RiskTransitionError::NoLevel);
            }
            if from == RiskState::ConfirmedCompromised {
                (
                    current,
                    format!(
                        "{risk_event_type} detected; the user stays confirmed compromised at high"
                    ),
                    vec![*risk_event_type],
                )
            } else {
                let level = if from == RiskState::AtRisk {
                    current.risk_level.max(*aggregated_level)
                } else {
                    *aggregated_level
                };
                (
                    UserRiskStatus {
                        risk_level: level,
                        risk_state: RiskState::AtRisk,
                        risk_detail: RiskDetail::None,
                    },
                    format!("{risk_event_type} detected; user risk is now {level}"),
                    vec![*risk_event_type],
                )
            }
        }
        UserRiskEvent::LevelRecomputed { aggregated_level } => {
            if from != RiskState::AtRisk {
                return Err(RiskTransitionError::NoRiskToActOn {
                    event: name,
                    state: from,
                });
            }
            if *aggregated_level == RiskLevel::None {
                (
                    UserRiskStatus::default(),
                    "no detection counts any more (aged out or dismissed); user risk is none"
                        .to_owned(),
                    vec![],
                )
            } else {
                (
                    UserRiskStatus {
                        risk_level: *aggregated_level,
                        ..current
                    },
                    format!("detections changed; user risk is now {aggregated_level}"),
                    vec![],
                )
            }
        }
        UserRiskEvent::SecuredPasswordReset => {
            need_user()?;
            need_risk()?;
            (
                remediated(RiskDetail::UserPerformedSecuredPasswordReset),
                "the user reset their password after verifying a registered security method"
                    .to_owned(),
                vec![],
            )
        }
        UserRiskEvent::SecuredPasswordChange => {
            need_user()?;
            need_risk()?;
            (
                remediated(RiskDetail::UserPerformedSecuredPasswordChange),
                "the user changed their password after MFA during a sign-in".to_owned(),
                vec![],
            )
        }
        UserRiskEvent::AdminGeneratedTemporaryPassword => {
            need_admin()?;
            need_risk()?;
            (
                remediated(RiskDetail::AdminGeneratedTemporaryPassword),
                "an admin set a temporary password that must be changed at next sign-in".to_owned(),
                vec![],
            )
        }
        UserRiskEvent::AdminDismissed => {
            need_admin()?;
            need_risk()?;
            (
                UserRiskStatus {
                    risk_level: RiskLevel::None,
                    risk_state: RiskState::Dismissed,
                    risk_detail: RiskDetail::AdminDismissedAllRiskForUser,
                },
                "an admin dismissed the user's risk; the password was not changed".to_owned(),
                vec![],
            )
        }
        UserRiskEvent::AdminConfirmedCompromised => {
            need_admin()?;
            if from == RiskState::ConfirmedCompromised {
                return Err(RiskTransitionError::AlreadyConfirmedCompromised);
            }
            (
                UserRiskStatus {
                    risk_level: RiskLevel::High,
                    risk_state: RiskState::ConfirmedCompromised,
                    risk_detail: RiskDetail::AdminConfirmedUserCompromised,
                },
                "an admin confirmed the user compromised; user risk is high".to_owned(),
                vec![RiskEventType::AdminConfirmedUserCompromised],
            )
        }
        UserRiskEvent::AdminConfirmedSafe => {
            need_admin()?;
            need_risk()?;
            (
                UserRiskStatus {
                    risk_level: RiskLevel::None,
                    risk_state: RiskState::ConfirmedSafe,
                    risk_detail: RiskDetail::AdminConfirmedSigninSafe,
                },
                "an admin confirmed the risky activity was the user's own; the password was not \
                 changed"
                    .to_owned(),
                vec![],
            )
        }
    };

    Ok(Transition {
        status,
        history: RiskHistoryEntry {
            initiated_by: actor.clone(),
            reason,
            risk_event_types: types,
            previous_state: from,
            risk_level: status.risk_level,
            risk_state: status.risk_state,
            risk_detail: status.risk_detail,
            risk_last_updated_date_time: at,
        },
    })
}

fn remediated(detail: RiskDetail) -> UserRiskStatus {
    UserRiskStatus {
        risk_level: RiskLevel::None,
        risk_state: RiskState::Remediated,
        risk_detail: detail,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::detection::DetectionState;
    use crate::vocab::DetectionTimingType;
    use proptest::prelude::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
    }

    fn status(state: RiskState, level: RiskLevel) -> UserRiskStatus {
        UserRiskStatus {
            risk_level: level,
            risk_state: state,
            risk_detail: RiskDetail::None,
        }
    }

    const STATES: [RiskState; 6] = [
        RiskState::None,
        RiskState::AtRisk,
        RiskState::ConfirmedCompromised,
        RiskState::Remediated,
        RiskState::Dismissed,
        RiskState::ConfirmedSafe,
    ];

    fn level_for(state: RiskState) -> RiskLevel {
        match state {
            RiskState::AtRisk => RiskLevel::Medium,
            RiskState::ConfirmedCompromised => RiskLevel::High,
            _ => RiskLevel::None,
        }
    }

    fn admin() -> Actor {
        Actor::Admin("admin-1".into())
    }
    fn user() -> Actor {
        Actor::User("bob".into())
    }

    #[test]
    fn detection_puts_user_at_risk_from_every_resting_state() {
        for from in [
            RiskState::None,
            RiskState::Remediated,
            RiskState::Dismissed,
            RiskState::ConfirmedSafe,
        ] {
            let ev = UserRiskEvent::DetectionRaised {
                risk_event_type: RiskEventType::LeakedCredentials,
                aggregated_level: RiskLevel::High,
            };
            let tr = transition(status(from, level_for(from)), &ev, &Actor::System, t0());
            let tr = tr.unwrap_or_else(|e| unreachable!("{from}: {e}"));
            assert_eq!(tr.status.risk_state, RiskState::AtRisk, "from {from}");
            assert_eq!(tr.status.risk_level, RiskLevel::High);
            assert_eq!(tr.status.risk_detail, RiskDetail::None);
            assert_eq!(tr.history.previous_state, from);
            assert_eq!(
                tr.history.risk_event_types,
                vec![RiskEventType::LeakedCredentials]
            );
            assert_eq!(tr.history.initiated_by, Actor::System);
            assert_eq!(tr.history.risk_last_updated_date_time, t0());
            assert!(tr.history.reason.contains("leakedCredentials"));
        }
    }

    #[test]
    fn detection_while_at_risk_never_lowers_level() {
        let ev = UserRiskEvent::DetectionRaised {
            risk_event_type: RiskEventType::PasswordSpray,
            aggregated_level: RiskLevel::Low,
        };
        let tr = transition(
            status(RiskState::AtRisk, RiskLevel::High),
            &ev,
            &Actor::System,
            t0(),
        );
        assert_eq!(tr.map(|t| t.status.risk_level), Ok(RiskLevel::High));
    }

    #[test]
    fn detection_while_compromised_keeps_state() {
        let cur = UserRiskStatus {
            risk_level: RiskLevel::High,
            risk_state: RiskState::ConfirmedCompromised,
            risk_detail: RiskDetail::AdminConfirmedUserCompromised,
        };
        let ev = UserRiskEvent::DetectionRaised {
            risk_event_type: RiskEventType::PasswordSpray,
            aggregated_level: RiskLevel::Low,
        };
        let tr = transition(cur, &ev, &Actor::System, t0());
        assert_eq!(tr.map(|t| t.status), Ok(cur));
    }

    #[test]
    fn detection_with_no_level_refused() {
        let ev = UserRiskEvent::DetectionRaised {
            risk_event_type: RiskEventType::PasswordSpray,
            aggregated_level: RiskLevel::None,
        };
        assert_eq!(
            transition(UserRiskStatus::default(), &ev, &Actor::System, t0()),
            Err(RiskTransitionError::NoLevel)
        );
    }

    #[test]
    fn remediation_events_from_every_state() {
        let cases = [
            (
                UserRiskEvent::SecuredPasswordReset,
                user(),
                RiskState::Remediated,
                RiskDetail::UserPerformedSecuredPasswordReset,
            ),
            (
                UserRiskEvent::SecuredPasswordChange,
                user(),
                RiskState::Remediated,
                RiskDetail::UserPerformedSecuredPasswordChange,
            ),
            (
                UserRiskEvent::AdminGeneratedTemporaryPassword,
                admin(),
                RiskState::Remediated,
                RiskDetail::AdminGeneratedTemporaryPassword,
            ),
            (
                UserRiskEvent::AdminDismissed,
                admin(),
                RiskState::Dismissed,
                RiskDetail::AdminDismissedAllRiskForUser,
            ),
            (
                UserRiskEvent::AdminConfirmedSafe,
                admin(),
                RiskState::ConfirmedSafe,
                RiskDetail::AdminConfirmedSigninSafe,
            ),
        ];
        for (ev, actor, to, detail) in cases {
            for from in STATES {
                let got = transition(status(from, level_for(from)), &ev, &actor, t0());
                if has_risk(from) {
                    let tr = got.unwrap_or_else(|e| unreachable!("{ev:?} from {from}: {e}"));
                    assert_eq!(tr.status.risk_state, to);
                    assert_eq!(tr.status.risk_detail, detail);
                    assert_eq!(tr.status.risk_level, RiskLevel::None);
                    assert_eq!(tr.history.previous_state, from);
                    assert_eq!(tr.history.initiated_by, actor);
                } else {
                    assert!(
                        matches!(got, Err(RiskTransitionError::NoRiskToActOn { state, .. }) if state == from),
                        "{ev:?} from {from} should be refused, got {got:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn wrong_actor_refused() {
        let at_risk = status(RiskState::AtRisk, RiskLevel::High);
        for ev in [
            UserRiskEvent::AdminDismissed,
            UserRiskEvent::AdminGeneratedTemporaryPassword,
            UserRiskEvent::AdminConfirmedCompromised,
            UserRiskEvent::AdminConfirmedSafe,
        ] {
            for actor in [user(), Actor::System] {
                assert!(matches!(
                    transition(at_risk, &ev, &actor, t0()),
                    Err(RiskTransitionError::AdminOnly { .. })
                ));
            }
        }
        for ev in [
            UserRiskEvent::SecuredPasswordReset,
            UserRiskEvent::SecuredPasswordChange,
        ] {
            for actor in [admin(), Actor::System] {
                assert!(matches!(
                    transition(at_risk, &ev, &actor, t0()),
                    Err(RiskTransitionError::UserOnly { .. })
                ));
            }
        }
    }

    #[test]
    fn confirm_compromised_from_every_state_but_itself() {
        for from in STATES {
            let got = transition(
                status(from, level_for(from)),
                &UserRiskEvent::AdminConfirmedCompromised,
                &admin(),
                t0(),
            );
            if from == RiskState::ConfirmedCompromised {
                assert_eq!(got, Err(RiskTransitionError::AlreadyConfirmedCompromised));
            } else {
                let tr = got.unwrap_or_else(|e| unreachable!("{from}: {e}"));
                assert_eq!(tr.status.risk_state, RiskState::ConfirmedCompromised);
                assert_eq!(tr.status.risk_level, RiskLevel::High);
                assert_eq!(
                    tr.status.risk_detail,
                    RiskDetail::AdminConfirmedUserCompromised
                );
            }
        }
    }

    #[test]
    fn at_risk_again_after_remediation() {
        let mut s = UserRiskStatus::default();
        let raise = UserRiskEvent::DetectionRaised {
            risk_event_type: RiskEventType::LeakedCredentials,
            aggregated_level: RiskLevel::High,
        };
        for ev in [
            (&raise, Actor::System),
            (&UserRiskEvent::SecuredPasswordReset, user()),
            (&raise, Actor::System),
        ] {
            s = transition(s, ev.0, &ev.1, t0())
                .map(|t| t.status)
                .unwrap_or_default();
        }
        assert_eq!(s.risk_state, RiskState::AtRisk);
        assert_eq!(s.risk_level, RiskLevel::High);
    }

    #[test]
    fn level_recomputed() {
        let at_risk = status(RiskState::AtRisk, RiskLevel::Medium);
        let down = transition(
            at_risk,
            &UserRiskEvent::LevelRecomputed {
                aggregated_level: RiskLevel::None,
            },
            &Actor::System,
            t0(),
        );
        assert_eq!(down.map(|t| t.status), Ok(UserRiskStatus::default()));
        let low = transition(
            at_risk,
            &UserRiskEvent::LevelRecomputed {
                aggregated_level: RiskLevel::Low,
            },
            &Actor::System,
            t0(),
        );
        assert_eq!(
            low.map(|t| t.status),
            Ok(status(RiskState::AtRisk, RiskLevel::Low))
        );
        for from in STATES.into_iter().filter(|s| *s != RiskState::AtRisk) {
            assert!(
                transition(
                    status(from, level_for(from)),
                    &UserRiskEvent::LevelRecomputed {
                        aggregated_level: RiskLevel::Low
                    },
                    &Actor::System,
                    t0()
                )
                .is_err(),
                "{from}"
            );
        }
    }

    #[test]
    fn user_risk_claim_wire_shape_and_trust() {
        let st = status(RiskState::AtRisk, RiskLevel::High);
        let claim = UserRiskClaim::new(
            st,
            OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_764_000_000),
        );
        assert_eq!(
            serde_json::to_value(claim).unwrap(),
            serde_json::json!({"level": "high", "state": "atRisk", "detail": "none", "updated_at": 1_764_000_000})
        );
        assert_eq!(
            UserRiskClaim::effective_level(Some(&claim), true),
            RiskLevel::High
        );
        assert_eq!(
            UserRiskClaim::effective_level(Some(&claim), false),
            RiskLevel::None
        );
        assert_eq!(UserRiskClaim::effective_level(None, true), RiskLevel::None);
        let remediated = UserRiskClaim {
            state: RiskState::Remediated,
            ..claim
        };
        assert_eq!(
            UserRiskClaim::effective_level(Some(&remediated), true),
            RiskLevel::None
        );
    }

    #[test]
    fn events_and_history_on_the_wire() {
        let ev = UserRiskEvent::DetectionRaised {
            risk_event_type: RiskEventType::LeakedCredentials,
            aggregated_level: RiskLevel::High,
        };
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"event": "detectionRaised", "riskEventType": "leakedCredentials", "aggregatedLevel": "high"})
        );
        let back: UserRiskEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, ev);
        let tr = transition(UserRiskStatus::default(), &ev, &Actor::System, t0()).unwrap();
        let h = serde_json::to_value(&tr.history).unwrap();
        assert_eq!(h["initiatedBy"], serde_json::json!({"kind": "system"}));
        assert_eq!(h["riskState"], "atRisk");
        assert_eq!(h["previousState"], "none");
        assert!(
            h["riskLastUpdatedDateTime"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
    }

    #[test]
    fn guest_risk_cannot_be_administered_here() {
        assert_eq!(ensure_risk_is_ours(UserType::Member, None), Ok(()));
        let err = ensure_risk_is_ours(UserType::Guest, Some("https://home.example"));
        let msg = err.map_err(|e| e.to_string()).err().unwrap_or_default();
        assert!(msg.contains("https://home.example"), "{msg}");
    }

    fn det(level: RiskLevel, state: DetectionState, age_days: i64) -> Detection {
        Detection {
            id: format!("d-{level}-{age_days}"),
            risk_event_type: RiskEventType::LeakedCredentials,
            risk_level: level,
            detection_timing_type: DetectionTimingType::Offline,
            source: "IdentityProtection".into(),
            ip_address: None,
            detected_date_time: t0() - Duration::days(age_days),
            state,
            explanation: String::new(),
        }
    }

    #[test]
    fn aggregation_takes_highest_active() {
        let cfg = AgeingConfig::default();
        let ds = [
            det(RiskLevel::Low, DetectionState::Active, 1),
            det(RiskLevel::High, DetectionState::Remediated, 1),
            det(RiskLevel::Medium, DetectionState::Active, 1),
            det(RiskLevel::High, DetectionState::Dismissed, 1),
        ];
        assert_eq!(aggregate_user_risk(&ds, t0(), &cfg), RiskLevel::Medium);
        assert_eq!(aggregate_user_risk(&[], t0(), &cfg), RiskLevel::None);
    }

    #[test]
    fn low_detections_age_out_others_do_not() {
        let cfg = AgeingConfig::default();
        assert_eq!(
            aggregate_user_risk(
                &[det(RiskLevel::Low, DetectionState::Active, 179)],
                t0(),
                &cfg
            ),
            RiskLevel::Low
        );
        assert_eq!(
            aggregate_user_risk(
                &[det(RiskLevel::Low, DetectionState::Active, 180)],
                t0(),
                &cfg
            ),
            RiskLevel::None
        );
        assert_eq!(
            aggregate_user_risk(
                &[det(RiskLevel::Medium, DetectionState::Active, 999)],
                t0(),
                &cfg
            ),
            RiskLevel::Medium
        );
        let short = AgeingConfig {
            low_level_max_age_days: 7,
        };
        assert_eq!(
            aggregate_user_risk(
                &[det(RiskLevel::Low, DetectionState::Active, 8)],
                t0(),
                &short
            ),
            RiskLevel::None
        );
    }

    fn arb_level() -> impl Strategy<Value = RiskLevel> {
        prop::sample::select(RiskLevel::ALL.to_vec())
    }
    fn arb_state() -> impl Strategy<Value = DetectionState> {
        prop::sample::select(vec![
            DetectionState::Active,
            DetectionState::Dismissed,
            DetectionState::Remediated,
        ])
    }

    proptest! {
        #[test]
        fn aggregation_is_max_of_counting_levels(
            ds in prop::collection::vec((arb_level(), arb_state(), 0i64..400), 0..20)
        ) {
            let cfg = AgeingConfig::default();
            let dets: Vec<Detection> = ds.iter().map(|(l, s, a)| det(*l, *s, *a)).collect();
            let mut expected = RiskLevel::None;
            for (l, s, a) in &ds {
                let aged = *l == RiskLevel::Low && *a >= 180;
                if *s == DetectionState::Active && !aged && *l > expected {
                    expected = *l;
                }
            }
            prop_assert_eq!(aggregate_user_risk(&dets, t0(), &cfg), expected);
        }
    }
}
