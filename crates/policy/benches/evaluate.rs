//! Policy evaluation for one sign-in against 200 policies (mixed users/groups/apps/risk/location
//! conditions, some report-only and disabled) plus both built-in risk policies.
//! Target: ≤ 20 µs per evaluation.
//!
//! `cargo bench -p tenantd-policy --bench evaluate`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

use risk::{RiskLevel, UserType};
use tenantd_policy::{
    ApplicationsCondition, BuiltInControl, ConditionalAccessPolicy, Conditions, EvaluationInput,
    GrantControls, GrantOperator, IdentityProtectionPolicies, LocationFacts, LocationsCondition,
    PolicySet, PolicyState, Satisfied, SignInRiskPolicy, UserFacts, UserRiskPolicy, UsersCondition,
};

fn policies(n: usize) -> Vec<ConditionalAccessPolicy> {
    (0..n)
        .map(|i| {
            let ids = |prefix: &str, k: usize| -> Vec<String> {
                (0..k)
                    .map(|j| format!("{prefix}-{}", (i * 7 + j) % 500))
                    .collect()
            };
            let users = match i % 4 {
                0 => UsersCondition {
                    include_users: vec!["All".into()],
                    exclude_users: ids("user", 5),
                    exclude_groups: ids("group", 2),
                    ..UsersCondition::default()
                },
                1 => UsersCondition {
                    include_users: vec!["GuestsOrExternalUsers".into()],
                    ..UsersCondition::default()
                },
                2 => UsersCondition {
                    include_users: ids("user", 50),
                    include_groups: ids("group", 5),
                    ..UsersCondition::default()
                },
                _ => UsersCondition {
                    include_groups: ids("group", 10),
                    exclude_users: ids("user", 3),
                    ..UsersCondition::default()
                },
            };
            let include_applications = if i % 3 == 0 {
                vec!["All".into()]
            } else {
                ids("app", 10)
            };
            let levels = [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High];
            let (controls, user_risk_levels) = match i % 5 {
                0 => (vec![BuiltInControl::Block], vec![]),
                1 => (
                    vec![BuiltInControl::Mfa, BuiltInControl::PasswordChange],
                    vec![levels[i % 3]],
                ),
                _ => (vec![BuiltInControl::Mfa], vec![]),
            };
            let include_applications = if i % 5 == 1 {
                vec!["All".into()]
            } else {
                include_applications
            };
            ConditionalAccessPolicy {
                id: format!("policy-{i}"),
                display_name: format!("Policy {i}"),
                state: match i % 10 {
                    0 => PolicyState::Disabled,
                    1 | 2 => PolicyState::EnabledForReportingButNotEnforced,
                    _ => PolicyState::Enabled,
                },
                conditions: Conditions {
                    users,
                    applications: ApplicationsCondition {
                        include_applications,
                        ..ApplicationsCondition::default()
                    },
                    user_risk_levels,
                    sign_in_risk_levels: if i % 2 == 0 {
                        levels[..=(i % 3)].to_vec()
                    } else {
                        vec![]
                    },
                    locations: (i % 4 == 0).then(|| LocationsCondition {
                        include_locations: vec!["All".into()],
                        exclude_locations: vec!["AllTrusted".into(), format!("loc-{}", i % 20)],
                    }),
                    ..Conditions::default()
                },
                grant_controls: Some(GrantControls {
                    operator: GrantOperator::And,
                    built_in_controls: controls,
                    ..GrantControls::default()
                }),
                ..ConditionalAccessPolicy::default()
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let builtin = IdentityProtectionPolicies {
        user_risk_policy: Some(UserRiskPolicy {
            state: PolicyState::Enabled,
            user_risk_levels: vec![RiskLevel::High],
            exclude_users: vec!["break-glass".into()],
            exclude_groups: vec![],
        }),
        sign_in_risk_policy: Some(SignInRiskPolicy {
            state: PolicyState::Enabled,
            sign_in_risk_levels: vec![RiskLevel::Medium, RiskLevel::High],
            exclude_users: vec![],
            exclude_groups: vec![],
        }),
    };
    let set = PolicySet::compile(policies(200), &builtin).unwrap();
    let input = EvaluationInput {
        user: UserFacts {
            id: "user-42".into(),
            user_type: UserType::Guest,
            groups: (0..10).map(|g| format!("group-{}", g * 37)).collect(),
        },
        app_id: "app-77".into(),
        location: LocationFacts {
            named_location_ids: vec!["loc-3".into(), "loc-11".into(), "elsewhere".into()],
            trusted: false,
        },
        user_risk_level: RiskLevel::Medium,
        sign_in_risk_level: RiskLevel::Low,
        satisfied: Satisfied {
            mfa: true,
            password_change: false,
        },
    };
    let e = set.evaluate(&input);
    eprintln!(
        "{} policies; decision {:?}; status {:?}",
        set.len(),
        e.decision,
        e.conditional_access_status
    );
    c.bench_function("PolicySet::evaluate (200 CA + 2 built-in)", |b| {
        b.iter(|| black_box(set.evaluate(black_box(&input))))
    });
    c.bench_function("PolicySet::evaluate + serialize results to JSON", |b| {
        b.iter(|| black_box(serde_json::to_vec(&set.evaluate(black_box(&input))).unwrap()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
