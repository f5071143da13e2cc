//! The demo relying party that `tenantd lab` starts next to the tenants.
//!
//! This crate owns a small, readable OpenID Connect client web app built on the
//! [`openidconnect`] crate: it signs a user in with the authorization code flow (PKCE S256,
//! `state`, `nonce`), checks the RFC 9207 `iss` response parameter itself (the crate does not),
//! verifies the ID token, calls userinfo and shows everything it received. It also offers
//! RP-initiated logout. It is a *demo*: flows and signed-in results live in memory only.
//!
//! Routes: `GET /` (home), `GET /login`, `GET /callback`, `GET /result`, `POST /logout`.
//!
//! The crate owns nothing of the provider: it talks to whatever issuer it is configured with,
//! over an HTTP client that uses rustls with the aws-lc-rs provider, trusts either the configured
//! CA file or the platform roots, and never follows redirects (SSRF, as the openidconnect docs
//! advise).

mod checks;
mod pages;
mod provider;
mod routes;
mod store;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use url::Url;

/// How the demo relying party is set up. `Debug` leaves the client secret out.
#[derive(Clone)]
pub struct DemoConfig {
    /// Address the demo listens on, e.g. `127.0.0.1:9445`.
    pub listen: SocketAddr,
    /// The OpenID provider's issuer identifier. Discovery happens at
    /// `{issuer}/.well-known/openid-configuration`. For an issuer without a path, both the form
    /// without and with a trailing `/` are accepted (whichever the provider advertises).
    pub issuer: Url,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret; when set, the code is exchanged with `client_secret_basic`,
    /// otherwise the demo acts as a public client (PKCE only).
    pub client_secret: Option<String>,
    /// The registered redirect URI, e.g. `http://127.0.0.1:9445/callback`. Its origin is also
    /// the app's origin (used for the post-logout redirect) and decides whether cookies are
    /// marked `Secure` (when it is `https`).
    pub redirect_uri: Url,
    /// A PEM file of CA certificates to trust for the provider (the lab's `certs/dev-ca.pem`);
    /// `None` trusts the platform's native roots.
    pub ca_file: Option<PathBuf>,
    /// Scopes to request, e.g. `openid profile email offline_access` (`openid` is always sent).
    pub scopes: Vec<String>,
    /// Title shown on every page.
    pub title: String,
}

impl std::fmt::Debug for DemoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoConfig")
            .field("listen", &self.listen)
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("ca_file", &self.ca_file)
            .field("scopes", &self.scopes)
            .field("title", &self.title)
            .finish()
    }
}

/// Why the demo could not be set up or served. Per-request failures never surface here: they
/// are rendered as error pages.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The configuration is unusable (the message says which part).
    #[error("invalid demo configuration: {0}")]
    Config(String),
    /// The CA file could not be read.
    #[error("cannot read CA file {path}")]
    CaFile {
        /// The configured CA file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The CA file holds no usable certificate.
    #[error("CA file {path}: {reason}")]
    CaPem {
        /// The configured CA file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the TLS configuration.
    #[error("TLS configuration")]
    Tls(#[from] rustls::Error),
    /// The HTTP client could not be built.
    #[error("HTTP client")]
    HttpClient(#[from] reqwest::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The configured listen address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("serving the demo")]
    Serve(#[source] std::io::Error),
}

/// Builds the demo's router. Reads the CA file and builds the HTTP client, but does not contact
/// the issuer yet: discovery happens on the first sign-in.
pub async fn router(cfg: DemoConfig) -> Result<axum::Router, DemoError> {
    routes::router(cfg).await
}

/// Binds `cfg.listen` and serves the demo until `shutdown` completes (then drains in-flight
/// requests).
pub async fn serve(
    cfg: DemoConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DemoError> {
    let addr = cfg.listen;
    let app = router(cfg).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DemoError::Bind { addr, source })?;
    tracing::info!(%addr, "demo relying party listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(DemoError::Serve)
}

/// Joins an error and its sources into one line for logs.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
