//! Policy errors: parse errors name the file, line and field; validation errors name the policy
//! and the field, all of them at once.

use std::fmt;

use serde::Serialize;
use thiserror::Error;

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldError {
    /// The policy's id, or its displayName when it has no id yet.
    pub policy: String,
    /// Dotted path, e.g. `grantControls.builtInControls`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "policy `{}`: {}: {}",
            self.policy, self.field, self.message
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// The text is not a policy (syntax, unknown field, unknown enum value, wrong type).
    #[error("{file}{}: {}{message}",
            .line.map(|l| format!(":{l}")).unwrap_or_default(),
            if .field.is_empty() { String::new() } else { format!("{}: ", .field) })]
    Parse {
        file: String,
        line: Option<usize>,
        field: String,
        message: String,
    },
    /// The policy parses but breaks Graph's rules.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
}

impl PolicyError {
    /// The individual rule violations (empty for a parse error).
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            PolicyError::Invalid(v) => v,
            PolicyError::Parse { .. } => &[],
        }
    }
}
