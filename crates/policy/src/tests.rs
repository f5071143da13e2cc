//! Each policy rule, one test (or a few) apiece; properties where they fit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use risk::{RiskLevel, UserType};

use crate::codes;
use crate::*;

fn policy(id: &str, controls: &[BuiltInControl]) -> ConditionalAccessPolicy {
    ConditionalAccessPolicy {
        id: id.into(),
        display_name: format!("Policy {id}"),
        state: PolicyState::Enabled,
        conditions: Conditions {
            users: UsersCondition {
                include_users: vec!["All".into()],
                ..UsersCondition::default()
            },
            applications: ApplicationsCondition {
                include_applications: vec!["All".into()],
                ..ApplicationsCondition::default()
            },
            ..Conditions::default()
        },
        grant_controls: Some(GrantControls {
            operator: GrantOperator::And,
            built_in_controls: controls.to_vec(),
            ..GrantControls::default()
        }),
        ..ConditionalAccessPolicy::default()
    }
}

fn member(id: &str) -> EvaluationInput {
    EvaluationInput {
        user: UserFacts {
            id: id.into(),
            user_type: UserType::Member,
            groups: vec![],
        },
        app_id: "app-1".into(),
        ..EvaluationInput::default()
    }
}

fn guest(id: &str) -> EvaluationInput {
    let mut i = member(id);
    i.user.user_type = UserType::Guest;
    i
}

fn set(policies: Vec<ConditionalAccessPolicy>) -> PolicySet {
    PolicySet::compile(policies, &IdentityProtectionPolicies::default()).unwrap()
}

fn result_of(e: &Evaluation, id: &str) -> PolicyResult {
    e.applied_conditional_access_policies
        .iter()
        .find(|a| &*a.id == id)
        .map(|a| a.result)
        .unwrap()
}

fn why_of(e: &Evaluation, id: &str) -> String {
    e.applied_conditional_access_policies
        .iter()
        .find(|a| &*a.id == id)
        .map(|a| a.why.to_string())
        .unwrap()
}

const BLOCK: &[BuiltInControl] = &[BuiltInControl::Block];
const MFA: &[BuiltInControl] = &[BuiltInControl::Mfa];
const PWD: &[BuiltInControl] = &[BuiltInControl::Mfa, BuiltInControl::PasswordChange];

fn user_risk_policy(levels: &[RiskLevel]) -> ConditionalAccessPolicy {
    let mut p = policy("user-risk", PWD);
    p.conditions.user_risk_levels = levels.to_vec();
    p
}

// ---------------------------------------------------------------------------------------------
// Parsing

const GRAPH_EXPORT: &str = r##"{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#identity/conditionalAccess/policies",
  "value": [{
    "id": "7359d0e0-d8a9-4afa-8a93-e23e099d7be8",
    "templateId": null,
    "displayName": "Require MFA for risky sign-ins",
    "createdDateTime": "2024-01-01T00:00:00Z",
    "modifiedDateTime": null,
    "state": "enabledForReportingButNotEnforced",
    "sessionControls": null,
    "conditions": {
      "userRiskLevels": [],
      "signInRiskLevels": ["high", "medium"],
      "clientAppTypes": ["all"],
      "servicePrincipalRiskLevels": [],
      "platforms": null, "locations": null, "devices": null, "times": null,
      "clientApplications": null, "insiderRiskLevels": null, "authenticationFlows": null,
      "applications": {"includeApplications": ["All"], "excludeApplications": [], "includeUserActions": [], "includeAuthenticationContextClassReferences": [], "applicationFilter": null},
      "users": {"includeUsers": ["All"], "excludeUsers": ["break-glass"], "includeGroups": [], "excludeGroups": [], "includeRoles": [], "excludeRoles": [], "includeGuestsOrExternalUsers": null, "excludeGuestsOrExternalUsers": null}
    },
    "grantControls": {"operator": "OR", "builtInControls": ["mfa"], "customAuthenticationFactors": [], "termsOfUse": [], "authenticationStrength": null}
  }]
}"##;

#[test]
fn graph_export_parses_and_validates() {
    let ps = parse_policies_json("export.json", GRAPH_EXPORT).unwrap();
    assert_eq!(ps.len(), 1);
    let p = &ps[0];
    assert_eq!(p.state, PolicyState::EnabledForReportingButNotEnforced);
    assert_eq!(
        p.conditions.sign_in_risk_levels,
        vec![RiskLevel::High, RiskLevel::Medium]
    );
    assert_eq!(p.conditions.users.exclude_users, vec!["break-glass"]);
    validate(p).unwrap();
}

#[test]
fn json_shapes_single_array_value_policies() {
    let one = serde_json::to_string(&policy("a", MFA)).unwrap();
    assert_eq!(parse_policies_json("p.json", &one).unwrap().len(), 1);
    let arr = format!(
        "[{one}, {}]",
        serde_json::to_string(&policy("b", BLOCK)).unwrap()
    );
    assert_eq!(parse_policies_json("p.json", &arr).unwrap().len(), 2);
    let wrapped = format!("{{\"policies\": [{one}]}}");
    assert_eq!(parse_policies_json("p.json", &wrapped).unwrap().len(), 1);
    assert_eq!(parse_policy_json("p.json", &one).unwrap(), policy("a", MFA));
}

#[test]
fn toml_single_and_many() {
    let single = r#"
id = "block-legacy"
displayName = "Block high sign-in risk"
state = "enabled"
[conditions]
signInRiskLevels = ["high"]
[conditions.users]
includeUsers = ["All"]
excludeUsers = ["break-glass"]
[conditions.applications]
includeApplications = ["All"]
[grantControls]
operator = "OR"
builtInControls = ["block"]
"#;
    let ps = parse_policies_toml("p.toml", single).unwrap();
    assert_eq!(ps.len(), 1);
    assert_eq!(
        ps[0].grant_controls.as_ref().unwrap().built_in_controls,
        vec![BuiltInControl::Block]
    );
    let many = r#"
[[policies]]
id = "a"
displayName = "A"
state = "disabled"
conditions.users.includeUsers = ["GuestsOrExternalUsers"]
conditions.applications.includeApplications = ["app-1"]
grantControls.builtInControls = ["mfa"]

[[policies]]
id = "b"
displayName = "B"
state = "enabled"
conditions.users.includeUsers = ["All"]
conditions.applications.includeApplications = ["All"]
conditions.userRiskLevels = ["high"]
grantControls = { operator = "AND", builtInControls = ["mfa", "passwordChange"] }
"#;
    let ps = parse_policy_file("lab.toml", many).unwrap();
    assert_eq!(ps.len(), 2);
    set(ps);
}

#[test]
fn unknown_enum_values_refused_naming_field_and_line() {
    let cases = [
        (
            "{\"id\":\"x\",\"displayName\":\"X\",\n\"state\":\"on\"}",
            "state",
            2,
            "unknown variant `on`",
        ),
        (
            "{\"id\":\"x\",\"displayName\":\"X\",\"state\":\"enabled\",\n\"grantControls\":{\"builtInControls\":[\"mfa\",\n\"compliantDevice\"]}}",
            "grantControls.builtInControls[1]",
            3,
            "compliantDevice",
        ),
        (
            "{\"id\":\"x\",\"displayName\":\"X\",\"state\":\"enabled\",\"conditions\":{\n\"signInRiskLevels\":[\"severe\"]}}",
            "conditions.signInRiskLevels[0]",
            2,
            "severe",
        ),
        (
            "{\"id\":\"x\",\"displayName\":\"X\",\"state\":\"enabled\",\"grantControls\":{\"operator\":\"and\"}}",
            "grantControls.operator",
            1,
            "`and`",
        ),
        (
            "{\"id\":\"x\",\"displayName\":\"X\",\"state\":\"enabled\",\"conditions\":{\"user\":{}}}",
            "conditions.user",
            1,
            "unknown field",
        ),
    ];
    for (text, field, line, msg) in cases {
        let err = parse_policy_json("p.json", text).unwrap_err();
        let PolicyError::Parse {
            file,
            line: l,
            field: f,
            message,
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(file, "p.json");
        assert_eq!(f, field, "{err}");
        assert_eq!(*l, Some(line), "{err}");
        assert!(message.contains(msg), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("p.json:{line}: {field}: ")),
            "{err}"
        );
    }
    let err = parse_policies_toml(
        "p.toml",
        "id = \"x\"\ndisplayName = \"X\"\nstate = \"paused\"\n",
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("p.toml:3: state: "), "{err}");
    let err = parse_policy_file("p.yaml", "").unwrap_err();
    assert!(err.to_string().contains(".json or .toml"));
}

// ---------------------------------------------------------------------------------------------
// Validation

fn invalid_fields(p: &ConditionalAccessPolicy) -> Vec<String> {
    match validate(p) {
        Ok(()) => vec![],
        Err(e) => e.field_errors().iter().map(|f| f.field.clone()).collect(),
    }
}

#[test]
fn password_change_rules() {
    assert!(invalid_fields(&user_risk_policy(&[RiskLevel::High])).is_empty());
    // Not AND-ed.
    let mut p = user_risk_policy(&[RiskLevel::High]);
    p.grant_controls.as_mut().unwrap().operator = GrantOperator::Or;
    assert_eq!(invalid_fields(&p), vec!["grantControls.operator"]);
    // Without mfa.
    let mut p = user_risk_policy(&[RiskLevel::High]);
    p.grant_controls.as_mut().unwrap().built_in_controls = vec![BuiltInControl::PasswordChange];
    assert_eq!(invalid_fields(&p), vec!["grantControls.builtInControls"]);
    // Without userRiskLevels.
    let p = user_risk_policy(&[]);
    assert_eq!(invalid_fields(&p), vec!["conditions.userRiskLevels"]);
    // Not all apps, or with exclusions.
    let mut p = user_risk_policy(&[RiskLevel::High]);
    p.conditions.applications.include_applications = vec!["app-1".into()];
    assert_eq!(
        invalid_fields(&p),
        vec!["conditions.applications.includeApplications"]
    );
    let mut p = user_risk_policy(&[RiskLevel::High]);
    p.conditions.applications.exclude_applications = vec!["app-1".into()];
    assert_eq!(
        invalid_fields(&p),
        vec!["conditions.applications.includeApplications"]
    );
}

#[test]
fn block_stands_alone() {
    assert!(invalid_fields(&policy("b", BLOCK)).is_empty());
    let p = policy("b", &[BuiltInControl::Block, BuiltInControl::Mfa]);
    assert_eq!(invalid_fields(&p), vec!["grantControls.builtInControls"]);
}

#[test]
fn structural_rules_name_their_fields() {
    let mut p = policy("", MFA);
    p.display_name = " ".into();
    p.conditions.users.include_users = vec!["All".into(), "u1".into()];
    p.conditions.users.exclude_users = vec!["All".into()];
    p.conditions.applications.include_applications = vec![];
    p.conditions.locations = Some(LocationsCondition::default());
    p.conditions.client_app_types = vec!["exchangeActiveSync".into()];
    p.conditions.platforms = Some(serde_json::json!({"includePlatforms": ["android"]}));
    p.session_controls = Some(serde_json::json!({"signInFrequency": {"value": 1}}));
    let fields = invalid_fields(&p);
    for f in [
        "id",
        "displayName",
        "conditions.users.includeUsers",
        "conditions.users.excludeUsers",
        "conditions.applications.includeApplications",
        "conditions.locations.includeLocations",
        "conditions.clientAppTypes",
        "conditions.platforms",
        "sessionControls",
    ] {
        assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
    }
    let mut p = policy("x", MFA);
    p.grant_controls = None;
    assert_eq!(invalid_fields(&p), vec!["grantControls"]);
    let mut p = policy("x", &[]);
    p.conditions.users.include_users = vec![];
    assert_eq!(
        invalid_fields(&p),
        vec![
            "conditions.users.includeUsers",
            "grantControls.builtInControls"
        ]
    );
    // The message names policy and field.
    let e = validate(&policy("x", &[])).unwrap_err().to_string();
    assert!(
        e.starts_with("policy `x`: grantControls.builtInControls: "),
        "{e}"
    );
}

#[test]
fn compile_collects_errors_and_refuses_duplicate_ids() {
    let err = PolicySet::compile(
        vec![policy("a", MFA), policy("a", BLOCK)],
        &Default::default(),
    )
    .unwrap_err();
    assert_eq!(err.field_errors().len(), 1);
    assert!(err.to_string().contains("two policies have this id"));
    let err = PolicySet::compile(
        vec![policy("a", &[]), user_risk_policy(&[])],
        &Default::default(),
    )
    .unwrap_err();
    assert_eq!(err.field_errors().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Evaluation

#[test]
fn no_policy_allows_not_applied() {
    let e = set(vec![]).evaluate(&member("alice")).into_owned();
    assert_eq!(e.decision, Decision::Allow);
    assert_eq!(
        e.conditional_access_status,
        ConditionalAccessStatus::NotApplied
    );
}

#[test]
fn block_wins_over_everything() {
    let mut b = policy("block", BLOCK);
    b.conditions.sign_in_risk_levels = vec![RiskLevel::High];
    let s = set(vec![
        policy("mfa", MFA),
        user_risk_policy(&[RiskLevel::High]),
        b,
    ]);
    let mut i = member("alice");
    i.sign_in_risk_level = RiskLevel::High;
    i.user_risk_level = RiskLevel::High;
    i.satisfied.mfa = true;
    let e = s.evaluate(&i);
    assert_eq!(
        e.decision,
        Decision::Block {
            reason: "blocked by policy `Policy block` (block)".into(),
            error_code: codes::BLOCKED_BY_CONDITIONAL_ACCESS
        }
    );
    assert_eq!(
        e.conditional_access_status,
        ConditionalAccessStatus::Failure
    );
    assert_eq!(result_of(&e, "mfa"), PolicyResult::Success);
    assert_eq!(result_of(&e, "block"), PolicyResult::Failure);
    assert_eq!(e.decision.error_code(), Some(53003));
    // Low sign-in risk: the block policy does not apply; password change is next.
    i.sign_in_risk_level = RiskLevel::Low;
    let e = s.evaluate(&i);
    assert_eq!(
        e.decision,
        Decision::RequirePasswordChange { mfa_first: false }
    );
    assert_eq!(result_of(&e, "block"), PolicyResult::NotApplied);
    assert!(why_of(&e, "block").contains("sign-in risk low"));
}

#[test]
fn report_only_is_reported_never_enforced() {
    let mut b = policy("ro-block", BLOCK);
    b.state = PolicyState::EnabledForReportingButNotEnforced;
    let mut m = policy("ro-mfa", MFA);
    m.state = PolicyState::EnabledForReportingButNotEnforced;
    m.conditions.applications.include_applications = vec!["other-app".into()];
    let mut ok = policy("ro-ok", MFA);
    ok.state = PolicyState::EnabledForReportingButNotEnforced;
    let s = set(vec![b, m, ok]);
    let mut i = member("alice");
    i.satisfied.mfa = true;
    let e = s.evaluate(&i);
    assert_eq!(e.decision, Decision::Allow);
    assert_eq!(
        e.conditional_access_status,
        ConditionalAccessStatus::NotApplied
    );
    assert_eq!(result_of(&e, "ro-block"), PolicyResult::ReportOnlyFailure);
    assert_eq!(result_of(&e, "ro-mfa"), PolicyResult::ReportOnlyNotApplied);
    assert_eq!(result_of(&e, "ro-ok"), PolicyResult::ReportOnlySuccess);
    let applied = &e.applied_conditional_access_policies[0];
    assert_eq!(
        applied.enforced_grant_controls.iter().collect::<Vec<_>>(),
        vec![BuiltInControl::Block]
    );
}

#[test]
fn disabled_is_not_enabled() {
    let mut p = policy("off", BLOCK);
    p.state = PolicyState::Disabled;
    let e = set(vec![p]).evaluate(&member("alice")).into_owned();
    assert_eq!(e.decision, Decision::Allow);
    assert_eq!(result_of(&e, "off"), PolicyResult::NotEnabled);
    assert_eq!(why_of(&e, "off"), "the policy is disabled");
}

#[test]
fn guest_password_change_is_a_block_53011() {
    let s = set(vec![user_risk_policy(&[RiskLevel::High])]);
    let mut i = guest("bob@home");
    i.user_risk_level = RiskLevel::High;
    i.satisfied.mfa = true;
    let e = s.evaluate(&i);
    let Decision::Block { reason, error_code } = &e.decision else {
        panic!("{:?}", e.decision);
    };
    assert_eq!(*error_code, codes::BLOCKED_DUE_TO_HOME_RISK);
    assert!(reason.contains("user-risk"), "{reason}");
    assert!(why_of(&e, "user-risk").contains("guest cannot do here"));
    assert_eq!(result_of(&e, "user-risk"), PolicyResult::Failure);
    assert_eq!(guest_password_change(UserType::Guest), Err(53011));
    // A member in the same spot is asked to change the password (after MFA when not done).
    let mut m = member("carol");
    m.user_risk_level = RiskLevel::High;
    assert_eq!(
        s.evaluate(&m).decision,
        Decision::RequirePasswordChange { mfa_first: true }
    );
    m.satisfied.mfa = true;
    let e = s.evaluate(&m);
    assert_eq!(
        e.decision,
        Decision::RequirePasswordChange { mfa_first: false }
    );
    assert_eq!(
        e.decision.error_code(),
        Some(codes::PASSWORD_CHANGE_REQUIRED)
    );
    m.satisfied.password_change = true;
    let e = s.evaluate(&m);
    assert_eq!(e.decision, Decision::Allow);
    assert_eq!(
        e.conditional_access_status,
        ConditionalAccessStatus::Success
    );
    // The guest at low risk is not affected.
    i.user_risk_level = RiskLevel::Low;
    assert_eq!(s.evaluate(&i).decision, Decision::Allow);
}

#[test]
fn guest_block_by_user_risk_policy_is_53011_other_blocks_53003() {
    let mut ur = policy("ur-block", BLOCK);
    ur.conditions.user_risk_levels = vec![RiskLevel::High];
    let mut i = guest("bob@home");
    i.user_risk_level = RiskLevel::High;
    let e = set(vec![ur.clone()]).evaluate(&i).into_owned();
    assert_eq!(e.decision.error_code(), Some(53011));
    let e = set(vec![policy("plain-block", BLOCK)])
        .evaluate(&i)
        .into_owned();
    assert_eq!(e.decision.error_code(), Some(53003));
    // Both: the home-risk code explains more to the guest.
    let e = set(vec![policy("plain-block", BLOCK), ur])
        .evaluate(&i)
        .into_owned();
    assert_eq!(e.decision.error_code(), Some(53011));
    let Decision::Block { reason, .. } = e.decision else {
        panic!()
    };
    assert!(
        reason.contains("plain-block") && reason.contains("ur-block"),
        "{reason}"
    );
}

#[test]
fn mfa_satisfied_by_trusted_home_amr_or_not() {
    let mut p = policy("sr", MFA);
    p.conditions.sign_in_risk_levels = vec![RiskLevel::Medium, RiskLevel::High];
    let s = set(vec![p]);
    let mut i = guest("alice@home");
    i.sign_in_risk_level = RiskLevel::Medium;
    // Partner's MFA not trusted (or amr without mfa): the server passes mfa = false.
    let e = s.evaluate(&i);
    assert_eq!(e.decision, Decision::RequireMfa);
    assert_eq!(e.decision.error_code(), Some(codes::STRONG_AUTH_REQUIRED));
    assert_eq!(result_of(&e, "sr"), PolicyResult::Failure);
    assert_eq!(why_of(&e, "sr"), "the policy applies and requires mfa");
    // Partner trusted for MFA and amr has mfa: satisfied.
    i.satisfied.mfa = true;
    let e = s.evaluate(&i);
    assert_eq!(e.decision, Decision::Allow);
    assert_eq!(result_of(&e, "sr"), PolicyResult::Success);
    assert_eq!(
        e.conditional_access_status,
        ConditionalAccessStatus::Success
    );
}

#[test]
fn users_groups_and_guests() {
    let mut p = policy("p", BLOCK);
    p.conditions.users = UsersCondition {
        include_users: vec!["GuestsOrExternalUsers".into(), "dave".into()],
        include_groups: vec!["contractors".into()],
        exclude_users: vec!["erin".into()],
        exclude_groups: vec!["break-glass".into()],
        ..UsersCondition::default()
    };
    let s = set(vec![p]);
    assert!(s.names_groups());
    assert!(!set(vec![policy("plain", BLOCK)]).names_groups());
    let blocked = |i: &EvaluationInput| matches!(s.evaluate(i).decision, Decision::Block { .. });
    assert!(blocked(&guest("g1")), "guests included");
    assert!(!blocked(&member("alice")), "members not included");
    assert!(blocked(&member("dave")), "by id");
    let mut c = member("frank");
    c.user.groups = vec!["staff".into(), "contractors".into()];
    assert!(blocked(&c), "by group");
    assert!(!blocked(&guest("erin")), "excluded by id");
    let mut bg = member("dave");
    bg.user.groups = vec!["break-glass".into()];
    assert!(!blocked(&bg), "excluded by group");
    let e = s.evaluate(&bg);
    assert_eq!(why_of(&e, "p"), "the user is in excluded group break-glass");
    // Exclude guests.
    let mut p = policy("q", BLOCK);
    p.conditions.users.exclude_users = vec!["GuestsOrExternalUsers".into()];
    let s = set(vec![p]);
    assert_eq!(s.evaluate(&guest("g")).decision, Decision::Allow);
    assert!(matches!(
        s.evaluate(&member("m")).decision,
        Decision::Block { .. }
    ));
    // None targets nobody.
    let mut p = policy("n", BLOCK);
    p.conditions.users.include_users = vec!["None".into()];
    assert_eq!(
        set(vec![p]).evaluate(&member("m")).decision,
        Decision::Allow
    );
}

#[test]
fn applications_include_and_exclude() {
    let mut p = policy("p", BLOCK);
    p.conditions.applications.include_applications = vec!["app-1".into(), "app-2".into()];
    let mut q = policy("q", BLOCK);
    q.conditions.applications.exclude_applications = vec!["app-1".into()];
    let s = set(vec![p, q]);
    let mut i = member("alice");
    let e = s.evaluate(&i);
    assert_eq!(result_of(&e, "p"), PolicyResult::Failure);
    assert_eq!(result_of(&e, "q"), PolicyResult::NotApplied);
    assert!(why_of(&e, "q").contains("excludeApplications"));
    i.app_id = "app-3".into();
    let e = s.evaluate(&i);
    assert_eq!(result_of(&e, "p"), PolicyResult::NotApplied);
    assert_eq!(result_of(&e, "q"), PolicyResult::Failure);
}

#[test]
fn locations_all_trusted_ids_and_exclusions() {
    let mut outside = policy("outside-trusted", MFA);
    outside.conditions.locations = Some(LocationsCondition {
        include_locations: vec!["All".into()],
        exclude_locations: vec!["AllTrusted".into()],
    });
    let mut embargo = policy("embargo", BLOCK);
    embargo.conditions.locations = Some(LocationsCondition {
        include_locations: vec!["unserved-countries".into()],
        exclude_locations: vec![],
    });
    let mut only_trusted = policy("trusted-only", MFA);
    only_trusted.conditions.locations = Some(LocationsCondition {
        include_locations: vec!["AllTrusted".into()],
        exclude_locations: vec!["partner-extranet".into()],
    });
    let s = set(vec![outside, embargo, only_trusted]);
    let at = |ids: &[&str], trusted: bool| {
        let mut i = member("alice");
        i.location = LocationFacts {
            named_location_ids: ids.iter().map(|s| s.to_string()).collect(),
            trusted,
        };
        s.evaluate(&i)
    };
    let e = at(&["oslo-office"], true);
    assert_eq!(result_of(&e, "outside-trusted"), PolicyResult::NotApplied);
    assert_eq!(result_of(&e, "embargo"), PolicyResult::NotApplied);
    assert_eq!(result_of(&e, "trusted-only"), PolicyResult::Failure);
    let e = at(&[], false);
    assert_eq!(result_of(&e, "outside-trusted"), PolicyResult::Failure);
    assert_eq!(result_of(&e, "trusted-only"), PolicyResult::NotApplied);
    assert_eq!(e.decision, Decision::RequireMfa);
    let e = at(&["unserved-countries"], false);
    assert!(matches!(e.decision, Decision::Block { .. }));
    let e = at(&["oslo-office", "partner-extranet"], true);
    assert_eq!(result_of(&e, "trusted-only"), PolicyResult::NotApplied);
    assert!(why_of(&e, "trusted-only").contains("excluded"));
}

#[test]
fn builtin_policies_cover_guests_with_exclusions_and_report_only() {
    let builtin = IdentityProtectionPolicies {
        user_risk_policy: Some(UserRiskPolicy {
            state: PolicyState::Enabled,
            user_risk_levels: vec![RiskLevel::High],
            exclude_users: vec!["break-glass".into()],
            exclude_groups: vec![],
        }),
        sign_in_risk_policy: Some(SignInRiskPolicy {
            state: PolicyState::EnabledForReportingButNotEnforced,
            sign_in_risk_levels: vec![RiskLevel::Medium, RiskLevel::High],
            exclude_users: vec![],
            exclude_groups: vec![],
        }),
    };
    let s = PolicySet::compile(vec![], &builtin).unwrap();
    assert_eq!(s.len(), 2);
    let mut i = guest("bob@home");
    i.user_risk_level = RiskLevel::High;
    i.sign_in_risk_level = RiskLevel::High;
    let e = s.evaluate(&i);
    assert_eq!(e.decision.error_code(), Some(53011));
    assert_eq!(
        result_of(&e, SIGN_IN_RISK_POLICY_ID),
        PolicyResult::ReportOnlyFailure
    );
    let mut bg = member("break-glass");
    bg.user_risk_level = RiskLevel::High;
    bg.sign_in_risk_level = RiskLevel::High;
    let e = s.evaluate(&bg);
    assert_eq!(
        e.decision,
        Decision::Allow,
        "excluded, and sign-in policy is report-only"
    );
    assert_eq!(result_of(&e, USER_RISK_POLICY_ID), PolicyResult::NotApplied);
    // From a tenant config.
    let cfg = parse_identity_protection_toml(
        "tenant.toml",
        "[userRiskPolicy]\nstate = \"enabled\"\n[signInRiskPolicy]\nstate = \"enabled\"\nexcludeUsers = [\"svc\"]\n",
    )
    .unwrap();
    assert_eq!(
        cfg.user_risk_policy.as_ref().unwrap().user_risk_levels,
        vec![RiskLevel::High]
    );
    assert_eq!(
        cfg.sign_in_risk_policy
            .as_ref()
            .unwrap()
            .sign_in_risk_levels,
        vec![RiskLevel::Medium, RiskLevel::High]
    );
    let err = parse_identity_protection_toml("tenant.toml", "[userRiskPolicy]\nstate = \"on\"\n")
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("tenant.toml:2: userRiskPolicy.state"),
        "{err}"
    );
}

#[test]
fn what_if_is_the_same_evaluation_and_reads_json() {
    let s = set(vec![
        user_risk_policy(&[RiskLevel::High]),
        policy("mfa", MFA),
    ]);
    let input: EvaluationInput = serde_json::from_str(
        r#"{"user": {"id": "bob@home", "userType": "guest"}, "appId": "app-1",
            "userRiskLevel": "high", "signInRiskLevel": "none"}"#,
    )
    .unwrap();
    assert_eq!(s.what_if(&input), s.evaluate(&input));
    let draft = what_if(vec![policy("mfa", MFA)], &Default::default(), &input).unwrap();
    assert_eq!(draft.decision, Decision::RequireMfa);
    let json = serde_json::to_value(s.what_if(&input)).unwrap();
    assert_eq!(json["decision"]["decision"], "block");
    assert_eq!(json["decision"]["errorCode"], 53011);
    assert_eq!(json["conditionalAccessStatus"], "failure");
    let first = &json["appliedConditionalAccessPolicies"][0];
    assert_eq!(first["id"], "user-risk");
    assert_eq!(first["displayName"], "Policy user-risk");
    assert_eq!(
        first["enforcedGrantControls"],
        serde_json::json!(["mfa", "passwordChange"])
    );
    assert_eq!(first["result"], "failure");
    assert!(first["why"].as_str().unwrap().contains("guest"));
}

#[test]
fn location_facts_from_intel() {
    let intel = risk::Intel::load(risk::IntelSources {
        named_locations: Some(risk::IntelSource::new(
            "loc.toml",
            "[[namedLocations]]\nid = \"hq\"\ndisplayName = \"HQ\"\nisTrusted = true\nipRanges = [\"192.0.2.0/24\"]\n",
        )),
        ..Default::default()
    })
    .unwrap();
    let f = LocationFacts::from(&intel.lookup("192.0.2.1".parse().unwrap()));
    assert_eq!(f.named_location_ids, vec!["hq".to_owned()]);
    assert!(f.trusted);
    assert_eq!(
        LocationFacts::from(&intel.lookup("198.51.100.1".parse().unwrap())),
        LocationFacts::default()
    );
}

#[test]
fn or_operator_needs_one() {
    let mut p = policy("or", MFA);
    p.grant_controls.as_mut().unwrap().operator = GrantOperator::Or;
    let s = set(vec![p]);
    let mut i = member("alice");
    assert_eq!(s.evaluate(&i).decision, Decision::RequireMfa);
    i.satisfied.mfa = true;
    assert_eq!(s.evaluate(&i).decision, Decision::Allow);
}

#[test]
fn proof_up_refused_during_risky_sign_in() {
    assert!(mfa_registration_allowed(RiskLevel::None, RiskLevel::None, RiskLevel::Low).is_ok());
    let err =
        mfa_registration_allowed(RiskLevel::None, RiskLevel::Medium, RiskLevel::Low).unwrap_err();
    assert_eq!(err.error_code, 53004);
    assert!(mfa_registration_allowed(RiskLevel::High, RiskLevel::None, RiskLevel::Low).is_err());
    assert!(mfa_registration_allowed(RiskLevel::Low, RiskLevel::None, RiskLevel::Medium).is_ok());
    assert!(mfa_registration_allowed(RiskLevel::Hidden, RiskLevel::None, RiskLevel::High).is_err());
}

#[test]
fn block_message_is_the_seeds() {
    assert_eq!(
        codes::BLOCKED_MESSAGE,
        "Your account is blocked. We've detected suspicious activity on your account."
    );
}

// ---------------------------------------------------------------------------------------------
// Properties

fn arb_level() -> impl Strategy<Value = RiskLevel> {
    prop::sample::select(RiskLevel::ALL.to_vec())
}

fn arb_policy(n: usize) -> impl Strategy<Value = ConditionalAccessPolicy> {
    (
        prop::sample::select(vec![
            PolicyState::Enabled,
            PolicyState::Disabled,
            PolicyState::EnabledForReportingButNotEnforced,
        ]),
        prop::sample::select(vec![0u8, 1, 2]),
        prop::collection::vec(arb_level(), 0..3),
        prop::collection::vec(arb_level(), 0..3),
        prop::bool::ANY,
        prop::bool::ANY,
    )
        .prop_map(move |(state, kind, ur, sr, only_guests, exclude_alice)| {
            let mut p = match kind {
                0 => policy(&format!("p{n}"), BLOCK),
                1 => policy(&format!("p{n}"), MFA),
                _ => policy(&format!("p{n}"), PWD),
            };
            p.state = state;
            p.conditions.user_risk_levels = ur;
            if kind == 2 && p.conditions.user_risk_levels.is_empty() {
                p.conditions.user_risk_levels = vec![RiskLevel::High];
            }
            p.conditions.sign_in_risk_levels = sr;
            if only_guests {
                p.conditions.users.include_users = vec!["GuestsOrExternalUsers".into()];
            }
            if exclude_alice {
                p.conditions.users.exclude_users = vec!["alice".into()];
            }
            p
        })
}

fn arb_policies() -> impl Strategy<Value = Vec<ConditionalAccessPolicy>> {
    (0usize..8).prop_flat_map(|len| (0..len).map(arb_policy).collect::<Vec<_>>())
}

fn arb_input() -> impl Strategy<Value = EvaluationInput> {
    (
        prop::sample::select(vec!["alice", "bob"]),
        prop::bool::ANY,
        arb_level(),
        arb_level(),
        prop::bool::ANY,
        prop::bool::ANY,
    )
        .prop_map(|(id, is_guest, ur, sr, mfa, pwd)| {
            let mut i = if is_guest { guest(id) } else { member(id) };
            i.user_risk_level = ur;
            i.sign_in_risk_level = sr;
            i.satisfied = Satisfied {
                mfa,
                password_change: pwd,
            };
            i
        })
}

proptest! {
    /// Report-only and disabled policies never change the decision.
    #[test]
    fn report_only_never_enforced(policies in arb_policies(), input in arb_input()) {
        let enforced: Vec<_> = policies
            .iter()
            .filter(|p| p.state == PolicyState::Enabled)
            .cloned()
            .collect();
        let all = set(policies).evaluate(&input).into_owned();
        let only_enforced = set(enforced).evaluate(&input).into_owned();
        prop_assert_eq!(all.decision, only_enforced.decision);
        prop_assert_eq!(all.conditional_access_status, only_enforced.conditional_access_status);
    }

    /// If any enabled policy that applies grants block, the decision is a block.
    #[test]
    fn block_always_wins(policies in arb_policies(), input in arb_input()) {
        let e = set(policies.clone()).evaluate(&input).into_owned();
        let any_block = e.applied_conditional_access_policies.iter().zip(&policies).any(|(a, p)| {
            a.result == PolicyResult::Failure
                && p.grant_controls.as_ref().is_some_and(|g| g.built_in_controls.contains(&BuiltInControl::Block))
        });
        if any_block {
            prop_assert!(matches!(e.decision, Decision::Block { .. }), "{:?}", e.decision);
        }
        // A guest is never asked to change their password here.
        if input.user.user_type == UserType::Guest {
            let asked = matches!(e.decision, Decision::RequirePasswordChange { .. });
            prop_assert!(!asked);
        }
    }

    /// An excluded user is never affected by the policy that excludes them.
    #[test]
    fn exclusion_wins(policies in arb_policies(), input in arb_input()) {
        let e = set(policies.clone()).evaluate(&input).into_owned();
        for (a, p) in e.applied_conditional_access_policies.iter().zip(&policies) {
            if p.conditions.users.exclude_users.contains(&input.user.id) {
                prop_assert!(matches!(
                    a.result,
                    PolicyResult::NotApplied | PolicyResult::ReportOnlyNotApplied | PolicyResult::NotEnabled
                ));
            }
        }
    }
}
