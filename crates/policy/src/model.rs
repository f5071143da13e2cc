//! Graph's `conditionalAccessPolicy` shape (camelCase, JSON or TOML), the built-in ID
//! Protection risk policies, and parsing with errors that name the file, line and field.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use risk::RiskLevel;

use crate::error::PolicyError;

/// `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum PolicyState {
    Enabled,
    /// The default for a policy built in code: it does nothing until enabled.
    #[default]
    Disabled,
    /// Report-only: evaluated and logged, never enforced.
    EnabledForReportingButNotEnforced,
}

/// `grantControls.operator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum GrantOperator {
    #[default]
    #[serde(rename = "AND")]
    And,
    #[serde(rename = "OR")]
    Or,
}

/// `grantControls.builtInControls` values tenantd enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum BuiltInControl {
    Block,
    Mfa,
    PasswordChange,
}

impl BuiltInControl {
    pub fn as_str(self) -> &'static str {
        match self {
            BuiltInControl::Block => "block",
            BuiltInControl::Mfa => "mfa",
            BuiltInControl::PasswordChange => "passwordChange",
        }
    }
}

/// `conditions.users`. Special values: `includeUsers` `All`, `GuestsOrExternalUsers`, `None`;
/// `excludeUsers` `GuestsOrExternalUsers`. Anything else is a user id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsersCondition {
    #[serde(default)]
    pub include_users: Vec<String>,
    #[serde(default)]
    pub exclude_users: Vec<String>,
    #[serde(default)]
    pub include_groups: Vec<String>,
    #[serde(default)]
    pub exclude_groups: Vec<String>,
    /// Not supported: must be empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_roles: Vec<String>,
    /// Not supported: must be empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_roles: Vec<String>,
    /// Not supported: must be null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_guests_or_external_users: Option<Value>,
    /// Not supported: must be null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_guests_or_external_users: Option<Value>,
}

/// `conditions.applications`. Special values: `All`, `None`; anything else is an app
/// (client) id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationsCondition {
    #[serde(default)]
    pub include_applications: Vec<String>,
    #[serde(default)]
    pub exclude_applications: Vec<String>,
    /// Not supported: must be empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_user_actions: Vec<String>,
    /// Not supported: must be empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_authentication_context_class_references: Vec<String>,
    /// Not supported: must be null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_filter: Option<Value>,
}

/// `conditions.locations`: named location ids, `All`, `AllTrusted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocationsCondition {
    #[serde(default)]
    pub include_locations: Vec<String>,
    #[serde(default)]
    pub exclude_locations: Vec<String>,
}

/// `conditions`. Conditions tenantd does not evaluate are accepted only when null or empty (as
/// Graph exports them), so a policy never silently applies more broadly than written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Conditions {
    #[serde(default)]
    pub users: UsersCondition,
    #[serde(default)]
    pub applications: ApplicationsCondition,
    #[serde(default)]
    pub user_risk_levels: Vec<RiskLevel>,
    #[serde(default)]
    pub sign_in_risk_levels: Vec<RiskLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locations: Option<LocationsCondition>,
    /// Only `["all"]` (or empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_app_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_states: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_applications: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_principal_risk_levels: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insider_risk_levels: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_flows: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in_risk_detections: Option<Value>,
}

/// `grantControls`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantControls {
    #[serde(default)]
    pub operator: GrantOperator,
    #[serde(default)]
    pub built_in_controls: Vec<BuiltInControl>,
    /// Not supported: must be empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_authentication_factors: Vec<String>,
    /// Not supported: must be empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terms_of_use: Vec<String>,
    /// Not supported: must be null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_strength: Option<Value>,
}

/// A Conditional Access policy, in Graph's `conditionalAccessPolicy` shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConditionalAccessPolicy {
    /// Required in files; the admin API assigns one on create.
    #[serde(default)]
    pub id: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub state: PolicyState,
    #[serde(default)]
    pub conditions: Conditions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_controls: Option<GrantControls>,
    /// Not supported: must be null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_controls: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_date_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    /// Graph's annotation on exported policies; ignored.
    #[serde(rename = "@odata.context", default, skip_serializing)]
    pub odata_context: Option<String>,
    /// Graph's annotation on exported policies; ignored.
    #[serde(rename = "@odata.type", default, skip_serializing)]
    pub odata_type: Option<String>,
}

/// The built-in ID Protection user-risk policy: for all users (guests included) and all apps,
/// when user risk is one of `userRiskLevels`, require a secure password change after MFA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserRiskPolicy {
    pub state: PolicyState,
    /// Default `["high"]`.
    #[serde(default = "default_user_risk_levels")]
    pub user_risk_levels: Vec<RiskLevel>,
    #[serde(default)]
    pub exclude_users: Vec<String>,
    #[serde(default)]
    pub exclude_groups: Vec<String>,
}

fn default_user_risk_levels() -> Vec<RiskLevel> {
    vec![RiskLevel::High]
}

/// The built-in ID Protection sign-in-risk policy: for all users (guests included) and all
/// apps, when sign-in risk is one of `signInRiskLevels`, require MFA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignInRiskPolicy {
    pub state: PolicyState,
    /// Default `["medium", "high"]`.
    #[serde(default = "default_sign_in_risk_levels")]
    pub sign_in_risk_levels: Vec<RiskLevel>,
    #[serde(default)]
    pub exclude_users: Vec<String>,
    #[serde(default)]
    pub exclude_groups: Vec<String>,
}

fn default_sign_in_risk_levels() -> Vec<RiskLevel> {
    vec![RiskLevel::Medium, RiskLevel::High]
}

/// Both built-in policies, as they appear in a tenant config (`[identityProtection]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityProtectionPolicies {
    #[serde(default)]
    pub user_risk_policy: Option<UserRiskPolicy>,
    #[serde(default)]
    pub sign_in_risk_policy: Option<SignInRiskPolicy>,
}

/// Id of the built-in user-risk policy in evaluation results.
pub const USER_RISK_POLICY_ID: &str = "idProtection-userRiskPolicy";
/// Id of the built-in sign-in-risk policy in evaluation results.
pub const SIGN_IN_RISK_POLICY_ID: &str = "idProtection-signInRiskPolicy";

fn all_users_and_apps(exclude_users: &[String], exclude_groups: &[String]) -> Conditions {
    Conditions {
        users: UsersCondition {
            include_users: vec!["All".into()],
            exclude_users: exclude_users.to_vec(),
            exclude_groups: exclude_groups.to_vec(),
            ..UsersCondition::default()
        },
        applications: ApplicationsCondition {
            include_applications: vec!["All".into()],
            ..ApplicationsCondition::default()
        },
        ..Conditions::default()
    }
}

impl UserRiskPolicy {
    /// The equivalent Conditional Access policy (levels → `passwordChange` AND `mfa`).
    pub fn to_conditional_access(&self) -> ConditionalAccessPolicy {
        ConditionalAccessPolicy {
            id: USER_RISK_POLICY_ID.into(),
            display_name: "ID Protection user risk policy".into(),
            state: self.state,
            conditions: Conditions {
                user_risk_levels: self.user_risk_levels.clone(),
                ..all_users_and_apps(&self.exclude_users, &self.exclude_groups)
            },
            grant_controls: Some(GrantControls {
                operator: GrantOperator::And,
                built_in_controls: vec![BuiltInControl::Mfa, BuiltInControl::PasswordChange],
                ..GrantControls::default()
            }),
            ..ConditionalAccessPolicy::default()
        }
    }
}

impl SignInRiskPolicy {
    /// The equivalent Conditional Access policy (levels → `mfa`).
    pub fn to_conditional_access(&self) -> ConditionalAccessPolicy {
        ConditionalAccessPolicy {
            id: SIGN_IN_RISK_POLICY_ID.into(),
            display_name: "ID Protection sign-in risk policy".into(),
            state: self.state,
            conditions: Conditions {
                sign_in_risk_levels: self.sign_in_risk_levels.clone(),
                ..all_users_and_apps(&self.exclude_users, &self.exclude_groups)
            },
            grant_controls: Some(GrantControls {
                operator: GrantOperator::And,
                built_in_controls: vec![BuiltInControl::Mfa],
                ..GrantControls::default()
            }),
            ..ConditionalAccessPolicy::default()
        }
    }
}

impl IdentityProtectionPolicies {
    /// The configured built-in policies as Conditional Access policies.
    pub fn to_conditional_access(&self) -> Vec<ConditionalAccessPolicy> {
        let mut v = Vec::new();
        if let Some(p) = &self.user_risk_policy {
            v.push(p.to_conditional_access());
        }
        if let Some(p) = &self.sign_in_risk_policy {
            v.push(p.to_conditional_access());
        }
        v
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GraphCollection {
    #[serde(rename = "@odata.context", default)]
    _context: Option<String>,
    value: Vec<ConditionalAccessPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoliciesFile {
    policies: Vec<ConditionalAccessPolicy>,
}

/// Parses one policy from JSON (the admin API's request body).
pub fn parse_policy_json(file: &str, text: &str) -> Result<ConditionalAccessPolicy, PolicyError> {
    from_json(file, text)
}

/// Parses a policy file in JSON: a single policy, an array of policies, Graph's list shape
/// `{"value": [...]}`, or `{"policies": [...]}`.
pub fn parse_policies_json(
    file: &str,
    text: &str,
) -> Result<Vec<ConditionalAccessPolicy>, PolicyError> {
    let shape: Value = serde_json::from_str(text).map_err(|e| json_error(file, text, e, ""))?;
    match &shape {
        Value::Array(_) => from_json(file, text),
        Value::Object(m) if m.contains_key("value") => {
            from_json::<GraphCollection>(file, text).map(|c| c.value)
        }
        Value::Object(m) if m.contains_key("policies") => {
            from_json::<PoliciesFile>(file, text).map(|c| c.policies)
        }
        _ => from_json(file, text).map(|p| vec![p]),
    }
}

/// Parses a policy file in TOML: a single policy at the top level, or `[[policies]]` tables.
pub fn parse_policies_toml(
    file: &str,
    text: &str,
) -> Result<Vec<ConditionalAccessPolicy>, PolicyError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| toml_error(file, text, &e, ""))?;
    if table.contains_key("policies") {
        from_toml::<PoliciesFile>(file, text).map(|c| c.policies)
    } else {
        from_toml(file, text).map(|p| vec![p])
    }
}

/// Parses a policy file by extension (`.json` or `.toml`).
pub fn parse_policy_file(
    file: &str,
    text: &str,
) -> Result<Vec<ConditionalAccessPolicy>, PolicyError> {
    let ext = file
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "json" => parse_policies_json(file, text),
        "toml" => parse_policies_toml(file, text),
        _ => Err(PolicyError::Parse {
            file: file.to_owned(),
            line: None,
            field: String::new(),
            message: "policy files must be .json or .toml".into(),
        }),
    }
}

/// Parses the built-in policies section of a tenant config (TOML).
pub fn parse_identity_protection_toml(
    file: &str,
    text: &str,
) -> Result<IdentityProtectionPolicies, PolicyError> {
    from_toml(file, text)
}

fn from_json<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, PolicyError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let v = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        json_error(file, text, e.into_inner(), &path)
    })?;
    de.end().map_err(|e| json_error(file, text, e, ""))?;
    Ok(v)
}

fn from_toml<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, PolicyError> {
    let de = toml::Deserializer::parse(text).map_err(|e| toml_error(file, text, &e, ""))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        toml_error(file, text, e.inner(), &path)
    })
}

fn clean_path(path: &str) -> String {
    if path == "." {
        String::new()
    } else {
        path.to_owned()
    }
}

fn json_error(file: &str, _text: &str, e: serde_json::Error, path: &str) -> PolicyError {
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
    PolicyError::Parse {
        file: file.to_owned(),
        line: Some(e.line()).filter(|l| *l > 0),
        field: clean_path(path),
        message: msg,
    }
}

fn toml_error(file: &str, text: &str, e: &toml::de::Error, path: &str) -> PolicyError {
    let line = e.span().map(|s| {
        text.get(..s.start.min(text.len()))
            .map_or(0, |p| p.bytes().filter(|b| *b == b'\n').count())
            + 1
    });
    PolicyError::Parse {
        file: file.to_owned(),
        line,
        field: clean_path(path),
        message: e.message().trim().to_owned(),
    }
}
