//! `[[partners]]`: the cross-tenant access settings for each partner tenant whose users may sign
//! in here as guests.

use super::{AppConfig, Problem, Validator};
use federation::{ClaimFormat, ClaimMapping};
use protocol::jwt::{SigningAlg, SigningKey};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPartner {
    id: String,
    display_name: Option<String>,
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    client_secret_env: Option<String>,
    private_key_file: Option<PathBuf>,
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default = "yes")]
    inbound_enabled: bool,
    #[serde(default)]
    trust_user_risk: bool,
    #[serde(default)]
    trust_mfa: bool,
    #[serde(default)]
    require_user_risk_claim: bool,
    #[serde(default)]
    emails_verified: bool,
    ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_scopes")]
    scopes: Vec<String>,
    #[serde(default)]
    user_risk_claim: RawClaimMapping,
    password_reset_url: Option<String>,
    #[serde(default)]
    shared_signals: bool,
    shared_signals_delivery: Option<String>,
    reverse_stream_client_id: Option<String>,
}

fn yes() -> bool {
    true
}

fn default_timeout_ms() -> u64 {
    5_000
}

fn default_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawClaimMapping {
    claim: String,
    format: String,
    level: String,
    state: String,
    detail: String,
    updated_at: String,
}

impl Default for RawClaimMapping {
    fn default() -> Self {
        Self {
            claim: "user_risk".into(),
            format: "object".into(),
            level: "level".into(),
            state: "state".into(),
            detail: "detail".into(),
            updated_at: "updated_at".into(),
        }
    }
}

/// How the resource authenticates at a partner's token endpoint.
#[derive(Clone, PartialEq, Eq)]
pub enum PartnerCredential {
    /// `client_secret_basic`.
    Secret(String),
    /// `private_key_jwt` with this PKCS#8 PEM (ES256 or RS256) key.
    PrivateKey {
        /// Where the key was read from.
        path: PathBuf,
        /// The PEM text.
        pem: String,
    },
}

impl std::fmt::Debug for PartnerCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartnerCredential::Secret(_) => f.write_str("Secret(<redacted>)"),
            PartnerCredential::PrivateKey { path, .. } => {
                f.debug_struct("PrivateKey").field("path", path).finish()
            }
        }
    }
}

/// A partner tenant (Entra's cross-tenant access settings for one organization).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerConfig {
    /// Partner id: `home_tenant` in tokens, `homeTenantId` in the sign-in log.
    pub id: String,
    /// Name shown on pages.
    pub display_name: String,
    /// The partner's issuer URL, exactly as its tokens spell `iss`.
    pub issuer: String,
    /// The client id this tenant holds at the partner.
    pub client_id: String,
    /// How this tenant authenticates there.
    pub credential: PartnerCredential,
    /// Email domains (lowercase) whose users the partner is home to: home realm discovery.
    pub domains: Vec<String>,
    /// Whether the partner's users may sign in here at all (B2B collaboration inbound).
    pub inbound_enabled: bool,
    /// Whether the partner's `user_risk` claim is believed.
    pub trust_user_risk: bool,
    /// Whether the partner's MFA (`amr`) satisfies an MFA requirement here.
    pub trust_mfa: bool,
    /// Refuse a sign-in whose token has no readable user-risk claim.
    pub require_user_risk_claim: bool,
    /// The partner vouches for every email address it puts in a token, so an invitation may be
    /// redeemed without `email_verified: true` in it. Off by default: a home that lets users
    /// choose their address could otherwise claim someone else's invitation.
    pub emails_verified: bool,
    /// CA certificates to trust for the partner's TLS; the system roots when unset.
    pub ca_file: Option<PathBuf>,
    /// Time limit for each request to the partner (connect plus response).
    pub timeout: Duration,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// Where the user-risk claim is and in what shape.
    pub claim_mapping: ClaimMapping,
    /// The partner's self-service password reset page, which the block page sends its users
    /// to. It wins over the `password_reset_uri` the partner's discovery may advertise: the
    /// admins here know their partner, and most homes that are not tenantd advertise nothing.
    pub password_reset_url: Option<String>,
    /// The partner tells this tenant at once when one of its users' risk, sessions,
    /// credentials or account change (OpenID Shared Signals; this tenant receives them).
    pub shared_signals: bool,
    /// How the partner's signals come: pushed here (RFC 8935), or fetched from it (RFC 8936,
    /// for a tenant the partner cannot reach).
    pub signals_delivery: SignalsDelivery,
    /// The partner's own client here (an app with `partner_tenant = true`): the stream it
    /// opens at this tenant's transmitter hears of every one of the partner's users this
    /// tenant blocks as a guest (the reverse stream). Unset: the partner is not told.
    pub reverse_stream_client_id: Option<String>,
}

/// How a partner's shared signals reach this tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignalsDelivery {
    /// The partner pushes each SET here (RFC 8935).
    #[default]
    Push,
    /// This tenant polls the partner for them (RFC 8936).
    Poll,
}

impl PartnerConfig {
    /// The settings without secrets, as the admin store and API show them.
    pub fn public_json(&self) -> serde_json::Value {
        let (format, members) = match &self.claim_mapping.format {
            ClaimFormat::Level => ("level", serde_json::Value::Null),
            ClaimFormat::Object {
                level,
                state,
                detail,
                updated_at,
            } => (
                "object",
                serde_json::json!({"level": level, "state": state, "detail": detail, "updated_at": updated_at}),
            ),
        };
        serde_json::json!({
            "id": self.id,
            "displayName": self.display_name,
            "issuer": self.issuer,
            "clientId": self.client_id,
            "tokenEndpointAuthMethod": match self.credential {
                PartnerCredential::Secret(_) => "client_secret_basic",
                PartnerCredential::PrivateKey { .. } => "private_key_jwt",
            },
            "domains": self.domains,
            "b2bCollaborationInbound": { "isEnabled": self.inbound_enabled },
            "inboundTrust": { "isMfaAccepted": self.trust_mfa, "isUserRiskAccepted": self.trust_user_risk },
            "requireUserRiskClaim": self.require_user_risk_claim,
            "emailsVerified": self.emails_verified,
            "userRiskClaim": { "claim": self.claim_mapping.claim, "format": format, "members": members },
            "passwordResetUrl": self.password_reset_url,
            "sharedSignals": self.shared_signals,
        })
    }
}

impl Validator {
    pub(super) fn partner(&mut self, i: usize, p: RawPartner) -> Option<PartnerConfig> {
        let k = |f: &str| format!("partners[{i}].{f}");
        if p.id.is_empty()
            || p.id.len() > 64
            || !p
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            self.bad(
                k("id"),
                format!("1-64 characters of a-z, 0-9 and '-', got {:?}", p.id),
            );
        }
        let issuer_ok = federation::is_https_or_loopback(&p.issuer)
            && url::Url::parse(&p.issuer)
                .is_ok_and(|u| u.query().is_none() && u.fragment().is_none());
        if !issuer_ok {
            self.bad(
                k("issuer"),
                format!(
                    "an absolute https URL (plain http only for loopback), got {:?}",
                    p.issuer
                ),
            );
        }
        // A link on the block page: the same rule as the issuer (a query is fine here).
        if let Some(u) = &p.password_reset_url
            && !federation::is_https_or_loopback(u)
        {
            self.bad(
                k("password_reset_url"),
                format!(
                    "an absolute https URL (plain http only for loopback) of the partner's password reset page, got {u:?}"
                ),
            );
        }
        if p.client_id.is_empty() || !p.client_id.bytes().all(|b| b.is_ascii_graphic()) {
            self.bad(
                k("client_id"),
                "the client id this tenant holds at the partner",
            );
        }
        let secret = self.secret(&k(""), p.client_secret, p.client_secret_env)?;
        let credential = match (secret, p.private_key_file) {
            (Some(s), None) if !s.is_empty() => PartnerCredential::Secret(s),
            (None, Some(path)) => {
                let file = path.display().to_string();
                let pem = match std::fs::read_to_string(&path) {
                    Ok(pem) => pem,
                    Err(e) => {
                        self.problems.push(Problem::new(
                            file,
                            k("private_key_file"),
                            format!("a readable PKCS#8 PEM private key file ({e})"),
                        ));
                        return None;
                    }
                };
                let usable = [SigningAlg::ES256, SigningAlg::RS256]
                    .into_iter()
                    .any(|alg| SigningKey::from_pkcs8_pem(alg, &pem, 0, None).is_ok());
                if !usable {
                    self.problems.push(Problem::new(
                        file,
                        k("private_key_file"),
                        "a PKCS#8 PEM ES256 (P-256) or RS256 (RSA) private key",
                    ));
                    return None;
                }
                PartnerCredential::PrivateKey { path, pem }
            }
            _ => {
                self.bad(
                    k("client_secret"),
                    "exactly one of client_secret, client_secret_env or private_key_file",
                );
                return None;
            }
        };
        let mut domains = Vec::new();
        for (j, d) in p.domains.iter().enumerate() {
            let d = d.trim().to_ascii_lowercase();
            if d.is_empty()
                || !d.contains('.')
                || d.contains('@')
                || d.contains(char::is_whitespace)
            {
                self.bad(
                    format!("partners[{i}].domains[{j}]"),
                    format!("an email domain such as contoso.test, got {d:?}"),
                );
            }
            domains.push(d);
        }
        if !(100..=60_000).contains(&p.timeout_ms) {
            self.bad(
                k("timeout_ms"),
                format!("milliseconds between 100 and 60000, got {}", p.timeout_ms),
            );
        }
        if p.require_user_risk_claim && !p.trust_user_risk {
            self.bad(
                k("require_user_risk_claim"),
                "trust_user_risk = true as well (a claim that is not believed cannot be required)",
            );
        }
        let m = p.user_risk_claim;
        if m.claim.is_empty() {
            self.bad(k("user_risk_claim.claim"), "a claim name");
        }
        let format = match m.format.as_str() {
            "object" => ClaimFormat::Object {
                level: m.level,
                state: m.state,
                detail: m.detail,
                updated_at: m.updated_at,
            },
            "level" => ClaimFormat::Level,
            other => {
                self.bad(
                    k("user_risk_claim.format"),
                    format!("\"object\" (level/state/detail/updated_at members) or \"level\" (a bare level string), got {other:?}"),
                );
                ClaimFormat::Level
            }
        };
        let signals_delivery = match p.shared_signals_delivery.as_deref() {
            None | Some("push") => SignalsDelivery::Push,
            Some("poll") => SignalsDelivery::Poll,
            Some(other) => {
                self.bad(
                    k("shared_signals_delivery"),
                    format!("\"push\" or \"poll\", got {other:?}"),
                );
                SignalsDelivery::Push
            }
        };
        if p.shared_signals_delivery.is_some() && !p.shared_signals {
            self.bad(
                k("shared_signals_delivery"),
                "shared_signals = true as well (it says how the signals come)",
            );
        }
        Some(PartnerConfig {
            display_name: p.display_name.unwrap_or_else(|| p.id.clone()),
            id: p.id,
            issuer: p.issuer,
            client_id: p.client_id,
            credential,
            domains,
            inbound_enabled: p.inbound_enabled,
            trust_user_risk: p.trust_user_risk,
            trust_mfa: p.trust_mfa,
            require_user_risk_claim: p.require_user_risk_claim,
            emails_verified: p.emails_verified,
            shared_signals: p.shared_signals,
            signals_delivery,
            reverse_stream_client_id: p.reverse_stream_client_id,
            ca_file: p.ca_file,
            timeout: Duration::from_millis(p.timeout_ms),
            scopes: p.scopes,
            claim_mapping: ClaimMapping {
                claim: m.claim,
                format,
            },
            password_reset_url: p.password_reset_url,
        })
    }

    /// A partner's `reverse_stream_client_id` names one of the apps here that is registered
    /// for a partner tenant (it manages its stream with client credentials).
    pub(super) fn reverse_streams_known(&mut self, partners: &[PartnerConfig], apps: &[AppConfig]) {
        for (i, p) in partners.iter().enumerate() {
            let Some(client_id) = &p.reverse_stream_client_id else {
                continue;
            };
            let fits = apps.iter().any(|a| {
                a.client_id == *client_id
                    && a.partner_tenant
                    && a.grant_types.contains(&super::GrantType::ClientCredentials)
            });
            if !fits {
                self.bad(
                    format!("partners[{i}].reverse_stream_client_id"),
                    format!(
                        "the client_id of an app in [[apps]] with partner_tenant = true and the client_credentials grant, got {client_id:?}"
                    ),
                );
            }
        }
    }

    /// Ids and domains must each belong to one partner.
    pub(super) fn partners_unique(&mut self, partners: &[PartnerConfig]) {
        for (i, p) in partners.iter().enumerate() {
            if partners[..i].iter().any(|q| q.id == p.id) {
                self.bad(
                    format!("partners[{i}].id"),
                    format!("a unique partner id; {:?} is used twice", p.id),
                );
            }
            for d in &p.domains {
                if partners[..i].iter().any(|q| q.domains.contains(d)) {
                    self.bad(
                        format!("partners[{i}].domains"),
                        format!("each domain at one partner only; {d:?} is listed twice"),
                    );
                }
            }
        }
    }
}
