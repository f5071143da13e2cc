//! Checking a partner before a guest needs it: its discovery document and JWKS are fetched the
//! way a sign-in fetches them (same HTTP client: the partner's TLS trust, timeout, no
//! redirects), and what would make guests' sign-ins fail, or read user risk wrong, is reported
//! with what to fix. A sign-in's own errors come late and to the wrong person (a guest sees
//! "not trusted" or "not responding"); the check tells the administrator at start-up.
//!
//! The check reads and reports; it does not touch the relying party's cached discovery, so a
//! check never changes how sign-ins behave.

use serde::Serialize;
use serde_json::Value;

use crate::certificate::{CertificateProblem, certificate_problem};
use crate::mapping::ClaimMapping;
use crate::upstream::{Metadata, Upstream, chain};

/// What a check found wrong with a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The partner's TLS certificate was refused: every sign-in fails until it is fixed.
    UntrustedCertificate {
        /// The URL whose certificate was refused.
        url: String,
        /// Why.
        problem: CertificateProblem,
        /// The TLS error, for the log.
        detail: String,
    },
    /// No answer (connection refused, timeout, a server error).
    Unreachable {
        /// The URL that did not answer.
        url: String,
        /// What happened.
        detail: String,
    },
    /// The discovery document is missing or cannot be used for a sign-in.
    InvalidDiscovery {
        /// Where it was looked for.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The JWKS cannot verify the partner's ID tokens.
    UnusableJwks {
        /// The discovery document's `jwks_uri`.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The partner publishes `claims_supported` and the claim user risk is mapped from is not
    /// in it: its tokens probably carry risk under another name, and user risk would read as
    /// absent. (A partner that publishes no list is not judged.)
    RiskClaimNotSupported {
        /// The mapped claim (`user_risk_claim.claim`).
        claim: String,
    },
}

impl Finding {
    /// Its name in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::UntrustedCertificate { .. } => "untrustedCertificate",
            Finding::Unreachable { .. } => "unreachable",
            Finding::InvalidDiscovery { .. } => "invalidDiscovery",
            Finding::UnusableJwks { .. } => "unusableJwks",
            Finding::RiskClaimNotSupported { .. } => "riskClaimNotSupported",
        }
    }

    /// What is wrong and what it does to guests' sign-ins, in plain words.
    pub fn message(&self) -> String {
        match self {
            Finding::UntrustedCertificate {
                url,
                problem,
                detail,
            } => format!(
                "the TLS certificate of {url} is not trusted ({problem}); guests from this \
                 partner cannot sign in and are told their organization's certificate is not \
                 trusted ({detail})"
            ),
            Finding::Unreachable { url, detail } => format!(
                "{url} did not answer ({detail}); guests from this partner cannot sign in while \
                 it does not"
            ),
            Finding::InvalidDiscovery { url, detail } => format!(
                "the discovery document at {url} cannot be used: {detail}; guests from this \
                 partner cannot sign in"
            ),
            Finding::UnusableJwks { url, detail } => format!(
                "the partner's JWKS at {url} cannot verify its ID tokens: {detail}; guests from \
                 this partner cannot sign in"
            ),
            Finding::RiskClaimNotSupported { claim } => format!(
                "the partner's claims_supported does not list {claim:?}, the claim user risk is \
                 read from; if its tokens carry risk under another name, user risk reads as \
                 absent (none, or refused with require_user_risk_claim)"
            ),
        }
    }

    /// What an administrator does about it.
    pub fn fix(&self) -> String {
        match self {
            Finding::UntrustedCertificate { problem, .. } => problem.fix().to_owned(),
            Finding::Unreachable { .. } => "check that the partner's issuer URL is right and \
                 reachable from this host (DNS, firewall, proxy), or raise timeout_ms if it \
                 answers slowly"
                .to_owned(),
            Finding::InvalidDiscovery { .. } => "check the partner's issuer: it must be exactly \
                 the issuer the partner's discovery document and tokens name"
                .to_owned(),
            Finding::UnusableJwks { .. } => "the partner must publish its ID token signing keys \
                 (a JWK Set with at least one signature key) at its jwks_uri"
                .to_owned(),
            Finding::RiskClaimNotSupported { claim } => format!(
                "set user_risk_claim.claim (and format) to the claim the partner sends user risk \
                 in, or have the partner release {claim:?} to this tenant"
            ),
        }
    }
}

/// One partner's check: what was found (nothing when the partner is fine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerReport {
    /// Partner id.
    pub partner: String,
    /// The partner's issuer.
    pub issuer: String,
    /// What is wrong, if anything.
    pub findings: Vec<Finding>,
}

impl PartnerReport {
    /// Whether nothing was found.
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// `{"id", "issuer", "ok", "findings": [{"kind", "message", "fix"}]}` (the reload API).
impl Serialize for PartnerReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Report<'a> {
            id: &'a str,
            issuer: &'a str,
            ok: bool,
            findings: Vec<FindingJson>,
        }
        #[derive(Serialize)]
        struct FindingJson {
            kind: &'static str,
            message: String,
            fix: String,
        }
        Report {
            id: &self.partner,
            issuer: &self.issuer,
            ok: self.is_ok(),
            findings: self
                .findings
                .iter()
                .map(|f| FindingJson {
                    kind: f.kind(),
                    message: f.message(),
                    fix: f.fix(),
                })
                .collect(),
        }
        .serialize(s)
    }
}

/// Why a document could not be fetched.
#[derive(Debug)]
enum FetchError {
    Certificate(CertificateProblem, String),
    Unreachable(String),
    /// An answer, but not a JSON document (a 4xx, or a body that is not JSON).
    NotADocument(String),
}

/// Which document a fetch was for.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Discovery,
    Jwks,
}

impl FetchError {
    fn finding(self, url: &str, stage: Stage) -> Finding {
        let url = url.to_owned();
        match (self, stage) {
            (FetchError::Certificate(problem, detail), _) => Finding::UntrustedCertificate {
                url,
                problem,
                detail,
            },
            (FetchError::Unreachable(detail), _) => Finding::Unreachable { url, detail },
            (FetchError::NotADocument(detail), Stage::Discovery) => {
                Finding::InvalidDiscovery { url, detail }
            }
            (FetchError::NotADocument(detail), Stage::Jwks) => {
                Finding::UnusableJwks { url, detail }
            }
        }
    }
}

/// Where OpenID Connect Discovery §4 puts the partner's metadata (as openidconnect asks).
fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// What the check needs from a discovery document that a sign-in can use.
#[derive(Debug, PartialEq, Eq)]
struct Discovered {
    jwks_uri: String,
    claims_supported: Option<Vec<String>>,
}

/// The discovery document judged as a sign-in would use it: openidconnect's metadata type reads
/// it, it names the partner's issuer exactly, and it has a token endpoint.
fn read_discovery(issuer: &str, doc: &Value) -> Result<Discovered, String> {
    let named = doc
        .get("issuer")
        .and_then(Value::as_str)
        .ok_or("it names no issuer")?;
    if named != issuer {
        return Err(format!(
            "it names issuer {named:?}, but the partner's issuer is configured as {issuer:?}"
        ));
    }
    // Looked at before the whole document, so a bad list is named (serde's message is not).
    let claims_supported = match doc.get("claims_supported") {
        None | Some(Value::Null) => None,
        Some(Value::Array(names)) => Some(
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        Some(_) => return Err("its claims_supported is not a list".into()),
    };
    serde_json::from_value::<Metadata>(doc.clone())
        .map_err(|e| format!("it is not OpenID Provider Metadata: {e}"))?;
    if doc.get("token_endpoint").and_then(Value::as_str).is_none() {
        return Err("it lists no token_endpoint".into());
    }
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or("it lists no jwks_uri")?
        .to_owned();
    Ok(Discovered {
        jwks_uri,
        claims_supported,
    })
}

/// What makes a JWKS unable to verify the partner's ID tokens, if anything.
fn jwks_problem(doc: &Value) -> Option<String> {
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
        return Some("it is not a JWK Set (no \"keys\" list)".into());
    };
    if let Err(e) = serde_json::from_value::<openidconnect::core::CoreJsonWebKeySet>(doc.clone()) {
        return Some(format!("it cannot be read as a JWK Set: {e}"));
    }
    let text = |k: &Value, name: &str| k.get(name).and_then(Value::as_str).map(str::to_owned);
    let signing = keys
        .iter()
        .filter(|k| text(k, "use").is_none_or(|u| u == "sig"))
        .filter(|k| matches!(text(k, "kty").as_deref(), Some("EC" | "RSA" | "OKP")))
        .count();
    (signing == 0).then(|| {
        format!(
            "it holds {} key(s) and none can verify a signature (an EC, RSA or OKP key whose \
             \"use\" is \"sig\" or absent)",
            keys.len()
        )
    })
}

/// The finding for the mapped risk claim against the partner's `claims_supported`, if any.
fn risk_claim_finding(
    mapping: &ClaimMapping,
    claims_supported: Option<&[String]>,
) -> Option<Finding> {
    let listed = claims_supported?;
    (!mapping.is_listed_in(listed)).then(|| Finding::RiskClaimNotSupported {
        claim: mapping.claim.clone(),
    })
}

impl Upstream {
    /// Fetches the partner's discovery document and JWKS and reports what would make guests'
    /// sign-ins fail (an untrusted certificate, no answer, an unusable document or key set), and
    /// a `claims_supported` list without the claim user risk is mapped from. Never fails: what
    /// goes wrong is a finding.
    pub async fn check(&self) -> PartnerReport {
        PartnerReport {
            partner: self.settings().id.clone(),
            issuer: self.settings().issuer.clone(),
            findings: self.findings().await,
        }
    }

    async fn findings(&self) -> Vec<Finding> {
        let settings = self.settings();
        let url = discovery_url(&settings.issuer);
        let doc = match self.fetch(&url).await {
            Ok(doc) => doc,
            Err(e) => return vec![e.finding(&url, Stage::Discovery)],
        };
        let discovered = match read_discovery(&settings.issuer, &doc) {
            Ok(d) => d,
            Err(detail) => return vec![Finding::InvalidDiscovery { url, detail }],
        };
        let mut findings = Vec::new();
        findings.extend(risk_claim_finding(
            &settings.claim_mapping,
            discovered.claims_supported.as_deref(),
        ));
        match self.fetch(&discovered.jwks_uri).await {
            Ok(jwks) => findings.extend(jwks_problem(&jwks).map(|detail| Finding::UnusableJwks {
                url: discovered.jwks_uri.clone(),
                detail,
            })),
            Err(e) => findings.push(e.finding(&discovered.jwks_uri, Stage::Jwks)),
        }
        findings
    }

    /// GET a JSON document from the partner.
    async fn fetch(&self, url: &str) -> Result<Value, FetchError> {
        let failed = |e: reqwest::Error| match certificate_problem(&e) {
            Some(problem) => FetchError::Certificate(problem, chain(&e)),
            None => FetchError::Unreachable(chain(&e)),
        };
        let response = self
            .http()
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        // A server error is the partner being down, as a sign-in would see it; any other
        // answer that is not the document (404, a redirect) says the URL is wrong.
        if status.is_server_error() {
            return Err(FetchError::Unreachable(format!(
                "it answered HTTP {status}"
            )));
        }
        if !status.is_success() {
            return Err(FetchError::NotADocument(format!(
                "it answered HTTP {status}"
            )));
        }
        let body = response.bytes().await.map_err(failed)?;
        serde_json::from_slice(&body)
            .map_err(|e| FetchError::NotADocument(format!("the answer is not JSON: {e}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISSUER: &str = "https://home.test";

    fn discovery() -> Value {
        json!({
            "issuer": ISSUER,
            "authorization_endpoint": "https://home.test/authorize",
            "token_endpoint": "https://home.test/token",
            "jwks_uri": "https://home.test/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    }

    fn with(mut doc: Value, key: &str, value: Value) -> Value {
        doc.as_object_mut().unwrap().insert(key.into(), value);
        doc
    }

    fn without(mut doc: Value, key: &str) -> Value {
        doc.as_object_mut().unwrap().remove(key);
        doc
    }

    #[test]
    fn a_usable_discovery_document_is_read() {
        assert_eq!(
            read_discovery(ISSUER, &discovery()).unwrap(),
            Discovered {
                jwks_uri: "https://home.test/jwks".into(),
                claims_supported: None,
            }
        );
        let listed = with(discovery(), "claims_supported", json!(["sub", "user_risk"]));
        assert_eq!(
            read_discovery(ISSUER, &listed).unwrap().claims_supported,
            Some(vec!["sub".to_owned(), "user_risk".to_owned()])
        );
    }

    #[test]
    fn an_unusable_discovery_document_says_why() {
        for (doc, words) in [
            (
                with(discovery(), "issuer", json!("https://other.test")),
                "names issuer",
            ),
            (without(discovery(), "issuer"), "no issuer"),
            (without(discovery(), "token_endpoint"), "token_endpoint"),
            (without(discovery(), "jwks_uri"), "OpenID Provider Metadata"),
            (
                with(discovery(), "claims_supported", json!("user_risk")),
                "not a list",
            ),
        ] {
            let e = read_discovery(ISSUER, &doc).unwrap_err();
            assert!(e.contains(words), "{words}: {e}");
        }
    }

    #[test]
    fn a_jwks_needs_a_signature_key() {
        let ec = json!({"kty": "EC", "crv": "P-256", "kid": "k",
            "x": "WKn-ZIGevcwGIyyrzFoZNBdaq9_TsqzGl96oc0CWuis",
            "y": "y77t-RvAHRKTsSGdIYUfweuOvwrvDD-Q3Hv5J0fSKbE"});
        assert_eq!(jwks_problem(&json!({"keys": [ec.clone()]})), None);
        let enc = with(ec, "use", json!("enc"));
        assert!(
            jwks_problem(&json!({"keys": [enc]}))
                .unwrap()
                .contains("none can verify")
        );
        assert!(
            jwks_problem(&json!({"keys": []}))
                .unwrap()
                .contains("none can verify")
        );
        assert!(
            jwks_problem(&json!({"k": []}))
                .unwrap()
                .contains("not a JWK Set")
        );
    }

    #[test]
    fn the_risk_claim_is_judged_only_against_a_published_list() {
        let m = ClaimMapping::default();
        let list = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(risk_claim_finding(&m, None), None);
        assert_eq!(
            risk_claim_finding(&m, Some(&list(&["sub", "user_risk"]))),
            None
        );
        assert_eq!(
            risk_claim_finding(&m, Some(&list(&["sub", "risk_level"]))),
            Some(Finding::RiskClaimNotSupported {
                claim: "user_risk".into()
            })
        );
    }

    #[test]
    fn findings_name_what_to_fix() {
        let f = FetchError::Certificate(CertificateProblem::UnknownIssuer, "tls".into()).finding(
            "https://home.test/.well-known/openid-configuration",
            Stage::Discovery,
        );
        assert_eq!(f.kind(), "untrustedCertificate");
        assert!(f.message().contains("https://home.test"), "{}", f.message());
        assert!(f.fix().contains("ca_file"), "{}", f.fix());
        let f = FetchError::NotADocument("it answered HTTP 404".into())
            .finding("https://home.test/jwks", Stage::Jwks);
        assert_eq!(f.kind(), "unusableJwks");
        let report = PartnerReport {
            partner: "contoso".into(),
            issuer: ISSUER.into(),
            findings: vec![Finding::RiskClaimNotSupported {
                claim: "user_risk".into(),
            }],
        };
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(v["id"], "contoso");
        assert_eq!(v["ok"], false);
        assert_eq!(v["findings"][0]["kind"], "riskClaimNotSupported");
        assert!(
            v["findings"][0]["fix"]
                .as_str()
                .unwrap()
                .contains("user_risk_claim.claim")
        );
        assert_eq!(
            discovery_url("https://home.test/"),
            "https://home.test/.well-known/openid-configuration"
        );
    }
}
