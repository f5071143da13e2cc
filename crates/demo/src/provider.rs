//! Discovery and the cached view of the provider (metadata, JWKS, the openidconnect client).

use std::sync::Arc;

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalClaims, AdditionalProviderMetadata, ClientId, ClientSecret, DiscoveryError,
    EndSessionUrl, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, ProviderMetadata,
    RedirectUrl,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::checks::issuer_candidates;
use crate::{DemoConfig, error_chain};

/// Discovery fields beyond what openidconnect's core metadata reads.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct ExtraMetadata {
    /// RP-Initiated Logout 1.0.
    #[serde(default)]
    end_session_endpoint: Option<EndSessionUrl>,
    /// RFC 9207 §3.
    #[serde(default)]
    authorization_response_iss_parameter_supported: Option<bool>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The client `from_provider_metadata` builds: authorization endpoint set, token and userinfo
/// endpoints as discovered.
pub(crate) type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Every claim of a userinfo response that the standard claims do not name, kept as JSON so the
/// result page can show claims like `user_risk` without knowing them.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub(crate) struct OtherClaims(pub(crate) serde_json::Map<String, serde_json::Value>);
impl AdditionalClaims for OtherClaims {}

/// One successful discovery.
pub(crate) struct Provider {
    /// openidconnect client with the metadata and JWKS of this discovery.
    pub(crate) client: OidcClient,
    /// The issuer exactly as the provider advertises it (and as `iss` must read).
    pub(crate) issuer: String,
    pub(crate) end_session_endpoint: Option<EndSessionUrl>,
    pub(crate) iss_parameter_required: bool,
    pub(crate) has_userinfo: bool,
}

/// Why discovery failed, in words for the page; the details go to the log.
#[derive(Debug)]
pub(crate) struct DiscoveryFailure(pub(crate) String);

/// Discovers on first use and keeps the result; `refresh` replaces it (key rotation).
pub(crate) struct ProviderCache {
    http: reqwest::Client,
    candidates: Vec<String>,
    client_id: ClientId,
    client_secret: Option<ClientSecret>,
    redirect_uri: RedirectUrl,
    // A tokio mutex held across discovery, so concurrent sign-ins wait for one discovery
    // instead of each starting their own.
    current: Mutex<Option<Arc<Provider>>>,
}

impl ProviderCache {
    pub(crate) fn new(cfg: &DemoConfig, http: reqwest::Client) -> Self {
        Self {
            http,
            candidates: issuer_candidates(&cfg.issuer),
            client_id: ClientId::new(cfg.client_id.clone()),
            client_secret: cfg.client_secret.clone().map(ClientSecret::new),
            redirect_uri: RedirectUrl::from_url(cfg.redirect_uri.clone()),
            current: Mutex::new(None),
        }
    }

    /// The cached provider, discovering it if there is none yet.
    pub(crate) async fn get(&self) -> Result<Arc<Provider>, DiscoveryFailure> {
        let mut current = self.current.lock().await;
        if let Some(provider) = current.as_ref() {
            return Ok(provider.clone());
        }
        let provider = Arc::new(self.discover().await?);
        *current = Some(provider.clone());
        Ok(provider)
    }

    /// Discovers again because `stale` could not verify a token (e.g. the provider rotated its
    /// keys). If another request already replaced `stale`, that newer result is returned.
    pub(crate) async fn refresh(
        &self,
        stale: &Arc<Provider>,
    ) -> Result<Arc<Provider>, DiscoveryFailure> {
        let mut current = self.current.lock().await;
        if let Some(provider) = current.as_ref()
            && !Arc::ptr_eq(provider, stale)
        {
            return Ok(provider.clone());
        }
        let provider = Arc::new(self.discover().await?);
        *current = Some(provider.clone());
        Ok(provider)
    }

    async fn discover(&self) -> Result<Provider, DiscoveryFailure> {
        let mut last = None;
        for candidate in &self.candidates {
            let issuer = IssuerUrl::new(candidate.clone())
                .map_err(|e| DiscoveryFailure(format!("The issuer URL is invalid: {e}.")))?;
            match Metadata::discover_async(issuer, &self.http).await {
                Ok(metadata) => return Ok(self.build(metadata)),
                // Only an issuer mismatch is worth retrying with the other spelling.
                Err(err @ DiscoveryError::Validation(_)) => last = Some(err),
                Err(err) => return Err(describe(candidate, &err)),
            }
        }
        let issuer = self.candidates.first().map_or("", String::as_str);
        Err(match last {
            Some(err) => describe(issuer, &err),
            None => DiscoveryFailure("No issuer is configured.".to_owned()),
        })
    }

    fn build(&self, metadata: Metadata) -> Provider {
        let extra = metadata.additional_metadata().clone();
        let issuer = metadata.issuer().as_str().to_owned();
        let has_userinfo = metadata.userinfo_endpoint().is_some();
        tracing::info!(
            %issuer,
            keys = metadata.jwks().keys().len(),
            end_session = extra.end_session_endpoint.is_some(),
            iss_parameter = extra.authorization_response_iss_parameter_supported.unwrap_or(false),
            "discovered the provider"
        );
        let client = CoreClient::from_provider_metadata(
            metadata,
            self.client_id.clone(),
            self.client_secret.clone(),
        )
        .set_redirect_uri(self.redirect_uri.clone());
        Provider {
            client,
            issuer,
            end_session_endpoint: extra.end_session_endpoint,
            iss_parameter_required: extra
                .authorization_response_iss_parameter_supported
                .unwrap_or(false),
            has_userinfo,
        }
    }
}

fn describe<E: std::error::Error + 'static>(
    issuer: &str,
    err: &DiscoveryError<E>,
) -> DiscoveryFailure {
    tracing::warn!(%issuer, error = %error_chain(err), "discovery failed");
    let why = match err {
        DiscoveryError::Request(_) => "the provider could not be reached",
        DiscoveryError::Response(..) => "the provider answered discovery with an error",
        DiscoveryError::Parse(_) => "the discovery document or key set is not valid",
        DiscoveryError::Validation(_) => {
            "the discovery document names a different issuer than the one configured"
        }
        _ => "discovery failed",
    };
    DiscoveryFailure(format!(
        "Could not discover the provider at {issuer}: {why}."
    ))
}
