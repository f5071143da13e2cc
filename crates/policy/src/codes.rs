//! Error codes people can look up: Entra's numbers where one fits.

/// The seed's block message, exactly: shown on the block page and sent to the app as the OAuth
/// `error_description`.
pub const BLOCKED_MESSAGE: &str =
    "Your account is blocked. We've detected suspicious activity on your account.";

/// The seed's last line on a guest's block page for user risk, exactly.
pub const STILL_BLOCKED_AFTER_RESET: &str =
    "If you're still blocked after resetting your password, contact your IT administrator.";

/// Blocked due to risk on the home tenant (a guest's home user risk).
pub const BLOCKED_DUE_TO_HOME_RISK: u32 = 53011;
/// Blocked by Conditional Access.
pub const BLOCKED_BY_CONDITIONAL_ACCESS: u32 = 53003;
/// MFA registration blocked due to risk (`ProofUpBlockedDueToRisk`).
pub const PROOF_UP_BLOCKED_DUE_TO_RISK: u32 = 53004;
/// User not invited (no guest account here).
pub const USER_NOT_INVITED: u32 = 50020;
/// Blocked by inbound cross-tenant access policy.
pub const BLOCKED_BY_INBOUND_POLICY: u32 = 500213;
/// Account locked, or sign-in from a malicious IP.
pub const LOCKED_OR_MALICIOUS_IP: u32 = 50053;
/// Password change required due to account risk.
pub const PASSWORD_CHANGE_REQUIRED: u32 = 50135;
/// Strong authentication (MFA) required: the sign-in is interrupted for MFA.
pub const STRONG_AUTH_REQUIRED: u32 = 50074;
/// The home's token does not vouch for the email address an invitation would be redeemed with
/// (Entra's 90072 family: the external account cannot be matched to a guest here).
pub const UNVERIFIED_EMAIL: u32 = 90072;
/// A guest tried to sign in with a password here: their credentials live at their home tenant
/// (Entra's "invalid username or password" for an account with no local credential).
pub const GUEST_HAS_NO_LOCAL_PASSWORD: u32 = 50126;
/// The app asked for a fresh authentication (`prompt=login`, `max_age`) and the guest's home did
/// not confirm one (Entra's "session information is not sufficient").
pub const REAUTHENTICATION_REQUIRED: u32 = 50058;
/// Strong authentication (MFA) required for a non-interactive sign-in (a refresh), which cannot
/// provide it: the app must send the user to sign in again.
pub const STRONG_AUTH_REQUIRED_NON_INTERACTIVE: u32 = 50076;
/// The user account is disabled.
pub const ACCOUNT_DISABLED: u32 = 50057;
