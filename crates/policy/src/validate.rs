//! Graph's rules for a `conditionalAccessPolicy`, each violation naming its field.

use serde_json::Value;

use crate::error::{FieldError, PolicyError};
use crate::model::{BuiltInControl, ConditionalAccessPolicy, GrantOperator};

pub(crate) const ALL: &str = "All";
pub(crate) const NONE: &str = "None";
pub(crate) const GUESTS: &str = "GuestsOrExternalUsers";
pub(crate) const ALL_TRUSTED: &str = "AllTrusted";

struct Errors<'p> {
    policy: &'p str,
    list: Vec<FieldError>,
}

impl Errors<'_> {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.list.push(FieldError {
            policy: self.policy.to_owned(),
            field: field.to_owned(),
            message: message.into(),
        });
    }
}

fn is_unset(v: &Option<Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    }
}

/// Special values may only stand alone (`["All"]`, not `["All", "u1"]`).
fn alone(e: &mut Errors<'_>, field: &str, list: &[String], specials: &[&str]) {
    for s in specials {
        if list.iter().any(|v| v == s) && list.len() > 1 {
            e.add(field, format!("`{s}` cannot be combined with other values"));
        }
    }
}

fn not_in(e: &mut Errors<'_>, field: &str, list: &[String], forbidden: &[&str]) {
    for s in forbidden {
        if list.iter().any(|v| v == s) {
            e.add(field, format!("`{s}` is not allowed here"));
        }
    }
}

fn blank(e: &mut Errors<'_>, field: &str, list: &[String]) {
    if list.iter().any(|v| v.trim().is_empty()) {
        e.add(field, "ids must not be empty strings");
    }
}

/// Validates one policy against Graph's rules. All violations are returned together.
///
/// - `id` and `displayName` are required;
/// - users: `includeUsers` or `includeGroups` must name someone (`["None"]` targets nobody);
///   `All`/`None` stand alone; `excludeUsers` takes ids and `GuestsOrExternalUsers` only;
/// - applications: `includeApplications` is required; `All`/`None` stand alone;
/// - locations: `includeLocations` is required when `locations` is given; `All` stands alone;
/// - grant: `grantControls.builtInControls` is required; `block` cannot be combined with other
///   controls; `passwordChange` must be AND-ed with `mfa`, needs `userRiskLevels`, and the
///   policy must target all applications (no exclusions);
/// - conditions and controls tenantd does not evaluate must be null/empty, so a policy never
///   silently applies more broadly than it says.
pub fn validate(p: &ConditionalAccessPolicy) -> Result<(), PolicyError> {
    let name = if p.id.is_empty() {
        p.display_name.as_str()
    } else {
        p.id.as_str()
    };
    let mut e = Errors {
        policy: name,
        list: Vec::new(),
    };

    if p.id.trim().is_empty() {
        e.add("id", "is required");
    }
    if p.display_name.trim().is_empty() {
        e.add("displayName", "is required");
    }

    let u = &p.conditions.users;
    if u.include_users.is_empty() && u.include_groups.is_empty() {
        e.add(
            "conditions.users.includeUsers",
            "name the users this policy is for (`All`, `GuestsOrExternalUsers`, ids, or `None`), \
             or give includeGroups",
        );
    }
    alone(
        &mut e,
        "conditions.users.includeUsers",
        &u.include_users,
        &[ALL, NONE],
    );
    not_in(
        &mut e,
        "conditions.users.excludeUsers",
        &u.exclude_users,
        &[ALL, NONE],
    );
    for (f, l) in [
        ("conditions.users.includeUsers", &u.include_users),
        ("conditions.users.excludeUsers", &u.exclude_users),
        ("conditions.users.includeGroups", &u.include_groups),
        ("conditions.users.excludeGroups", &u.exclude_groups),
    ] {
        blank(&mut e, f, l);
    }
    not_in(
        &mut e,
        "conditions.users.includeGroups",
        &u.include_groups,
        &[ALL, NONE],
    );
    not_in(
        &mut e,
        "conditions.users.excludeGroups",
        &u.exclude_groups,
        &[ALL, NONE],
    );
    if !u.include_roles.is_empty() || !u.exclude_roles.is_empty() {
        e.add(
            "conditions.users.includeRoles",
            "directory roles are not supported by tenantd",
        );
    }
    if !is_unset(&u.include_guests_or_external_users)
        || !is_unset(&u.exclude_guests_or_external_users)
    {
        e.add(
            "conditions.users.includeGuestsOrExternalUsers",
            "not supported by tenantd: use `GuestsOrExternalUsers` in includeUsers/excludeUsers",
        );
    }

    let a = &p.conditions.applications;
    if a.include_applications.is_empty() {
        e.add(
            "conditions.applications.includeApplications",
            "name the apps this policy is for (`All`, app ids, or `None`)",
        );
    }
    alone(
        &mut e,
        "conditions.applications.includeApplications",
        &a.include_applications,
        &[ALL, NONE],
    );
    not_in(
        &mut e,
        "conditions.applications.excludeApplications",
        &a.exclude_applications,
        &[ALL, NONE],
    );
    blank(
        &mut e,
        "conditions.applications.includeApplications",
        &a.include_applications,
    );
    blank(
        &mut e,
        "conditions.applications.excludeApplications",
        &a.exclude_applications,
    );
    if !a.include_user_actions.is_empty() {
        e.add(
            "conditions.applications.includeUserActions",
            "user actions are not supported by tenantd",
        );
    }
    if !a.include_authentication_context_class_references.is_empty() {
        e.add(
            "conditions.applications.includeAuthenticationContextClassReferences",
            "authentication contexts are not supported by tenantd",
        );
    }
    if !is_unset(&a.application_filter) {
        e.add(
            "conditions.applications.applicationFilter",
            "application filters are not supported by tenantd",
        );
    }

    if let Some(l) = &p.conditions.locations {
        if l.include_locations.is_empty() {
            e.add(
                "conditions.locations.includeLocations",
                "is required when locations is given (`All`, `AllTrusted` or named location ids)",
            );
        }
        alone(
            &mut e,
            "conditions.locations.includeLocations",
            &l.include_locations,
            &[ALL],
        );
        not_in(
            &mut e,
            "conditions.locations.excludeLocations",
            &l.exclude_locations,
            &[ALL],
        );
        blank(
            &mut e,
            "conditions.locations.includeLocations",
            &l.include_locations,
        );
        blank(
            &mut e,
            "conditions.locations.excludeLocations",
            &l.exclude_locations,
        );
    }

    let c = &p.conditions;
    if c.client_app_types.iter().any(|t| t != "all") {
        e.add(
            "conditions.clientAppTypes",
            "only `all` is supported by tenantd",
        );
    }
    for (field, v) in [
        ("conditions.platforms", &c.platforms),
        ("conditions.devices", &c.devices),
        ("conditions.deviceStates", &c.device_states),
        ("conditions.clientApplications", &c.client_applications),
        ("conditions.times", &c.times),
        (
            "conditions.servicePrincipalRiskLevels",
            &c.service_principal_risk_levels,
        ),
        ("conditions.insiderRiskLevels", &c.insider_risk_levels),
        ("conditions.authenticationFlows", &c.authentication_flows),
        (
            "conditions.signInRiskDetections",
            &c.sign_in_risk_detections,
        ),
    ] {
        if !is_unset(v) {
            e.add(
                field,
                "this condition is not supported by tenantd (remove it or set it to null)",
            );
        }
    }
    if !is_unset(&p.session_controls) {
        e.add(
            "sessionControls",
            "session controls are not supported by tenantd (remove them or set them to null)",
        );
    }

    match &p.grant_controls {
        None => e.add(
            "grantControls",
            "is required (tenantd enforces grant controls: block, mfa, passwordChange)",
        ),
        Some(g) => {
            let has = |c: BuiltInControl| g.built_in_controls.contains(&c);
            if g.built_in_controls.is_empty() {
                e.add(
                    "grantControls.builtInControls",
                    "give at least one of block, mfa, passwordChange",
                );
            }
            if has(BuiltInControl::Block)
                && g.built_in_controls
                    .iter()
                    .any(|c| *c != BuiltInControl::Block)
            {
                e.add(
                    "grantControls.builtInControls",
                    "block cannot be combined with other controls",
                );
            }
            if has(BuiltInControl::PasswordChange) {
                if g.operator != GrantOperator::And {
                    e.add(
                        "grantControls.operator",
                        "passwordChange must be combined with mfa using AND",
                    );
                }
                if !has(BuiltInControl::Mfa) {
                    e.add(
                        "grantControls.builtInControls",
                        "passwordChange requires mfa as well (a secure password change follows MFA)",
                    );
                }
                if c.user_risk_levels.is_empty() {
                    e.add(
                        "conditions.userRiskLevels",
                        "passwordChange can only be used with a user risk condition",
                    );
                }
                if a.include_applications != [ALL] || !a.exclude_applications.is_empty() {
                    e.add(
                        "conditions.applications.includeApplications",
                        "passwordChange requires the policy to target all applications (`All`, \
                         no exclusions)",
                    );
                }
            }
            if !g.custom_authentication_factors.is_empty() {
                e.add(
                    "grantControls.customAuthenticationFactors",
                    "custom controls are not supported by tenantd",
                );
            }
            if !g.terms_of_use.is_empty() {
                e.add(
                    "grantControls.termsOfUse",
                    "terms of use are not supported by tenantd",
                );
            }
            if !is_unset(&g.authentication_strength) {
                e.add(
                    "grantControls.authenticationStrength",
                    "authentication strengths are not supported by tenantd",
                );
            }
        }
    }

    if e.list.is_empty() {
        Ok(())
    } else {
        Err(PolicyError::Invalid(e.list))
    }
}
