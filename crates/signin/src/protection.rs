//! ID Protection at run time: the tenant's IP intelligence and its policies (Conditional Access
//! files, policies created through the admin API, and the built-in user-risk and sign-in-risk
//! policies), loaded at start-up and reloaded on SIGHUP or through the admin API.
//!
//! A load is all or nothing: every file is read and checked before anything is swapped in, so a
//! bad line in one file leaves the tenant serving with the previous good intel and policies, and
//! the error names the file, the line and what is wrong.

use crate::config::RiskSettings;
use arc_swap::ArcSwap;
use policy::{ConditionalAccessPolicy, IdentityProtectionPolicies, PolicyError, PolicySet};
use risk::{Intel, IntelError, IntelSource, IntelSources};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::{Store, StoreError};

/// The file in `policies_dir` that configures the built-in ID Protection policies.
pub const IDENTITY_PROTECTION_FILE: &str = "identity-protection.toml";

/// Why intel or policies could not be (re)loaded. Nothing was swapped in.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read.
    #[error("{file}: cannot be read ({message})")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        message: String,
    },
    /// An intel file is wrong.
    #[error("{0}")]
    Intel(#[from] IntelError),
    /// A policy is wrong (parse errors name the file and line; rule violations the policy, and
    /// here also the file it came from).
    #[error("{0}")]
    Policy(PolicyError),
    /// The database could not be read (API-created policies).
    #[error("policies in the database: {0}")]
    Store(#[from] StoreError),
}

/// Where a policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file in `policies_dir` (read-only through the API).
    File(String),
    /// Created through the admin API (stored in the database).
    Api,
    /// A built-in ID Protection policy (`identity-protection.toml`).
    BuiltIn,
}

/// The tenant's policies, compiled, with where each came from.
#[derive(Debug, Default)]
pub struct Policies {
    /// The compiled set, in evaluation order.
    pub set: PolicySet,
    /// The built-in policies' settings.
    pub builtin: IdentityProtectionPolicies,
    /// Policies from files, in file-name order, with the file each came from.
    pub files: Vec<(String, ConditionalAccessPolicy)>,
    /// Policies created through the API, in creation order.
    pub api: Vec<ConditionalAccessPolicy>,
    origins: HashMap<String, Origin>,
}

impl Policies {
    /// Where policy `id` comes from, if it exists.
    pub fn origin(&self, id: &str) -> Option<&Origin> {
        self.origins.get(id)
    }

    /// Compiles file and API policies with the built-ins; a rule violation names the policy's
    /// file (or "admin API").
    pub fn compile(
        files: Vec<(String, ConditionalAccessPolicy)>,
        api: Vec<ConditionalAccessPolicy>,
        builtin: IdentityProtectionPolicies,
    ) -> Result<Policies, PolicyError> {
        let mut origins = HashMap::new();
        for (file, p) in &files {
            origins.insert(p.id.clone(), Origin::File(file.clone()));
        }
        for p in &api {
            origins.insert(p.id.clone(), Origin::Api);
        }
        for p in builtin.to_conditional_access() {
            origins.insert(p.id, Origin::BuiltIn);
        }
        let all: Vec<ConditionalAccessPolicy> = files
            .iter()
            .map(|(_, p)| p)
            .chain(api.iter())
            .cloned()
            .collect();
        let set = PolicySet::compile(all, &builtin).map_err(|e| match e {
            PolicyError::Invalid(errors) => PolicyError::Invalid(
                errors
                    .into_iter()
                    .map(|mut fe| {
                        let from = match origins.get(&fe.policy) {
                            Some(Origin::File(f)) => f.clone(),
                            Some(Origin::Api) => "admin API".into(),
                            Some(Origin::BuiltIn) => IDENTITY_PROTECTION_FILE.into(),
                            None => String::new(),
                        };
                        if !from.is_empty() {
                            fe.policy = format!("{} (from {from})", fe.policy);
                        }
                        fe
                    })
                    .collect(),
            ),
            other => other,
        })?;
        Ok(Policies {
            set,
            builtin,
            files,
            api,
            origins,
        })
    }
}

/// Intel and policies, swapped atomically on reload.
pub struct Protection {
    settings: RiskSettings,
    intel: ArcSwap<Intel>,
    policies: ArcSwap<Policies>,
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection")
            .field("intel", &self.intel.load().describe())
            .field("policies", &self.policies.load().set.len())
            .finish()
    }
}

/// What a (re)load loaded.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Loaded {
    /// Intel, in words.
    pub intel: String,
    /// Number of policies (files + API + built-in).
    pub policies: usize,
}

impl Protection {
    /// Loads everything or fails with the first bad file.
    pub async fn load(settings: RiskSettings, store: &Store) -> Result<Protection, LoadError> {
        let intel = load_intel(&settings).await?;
        let policies = load_policies(&settings, store).await?;
        Ok(Protection {
            settings,
            intel: ArcSwap::from_pointee(intel),
            policies: ArcSwap::from_pointee(policies),
        })
    }

    /// The current intel.
    pub fn intel(&self) -> Arc<Intel> {
        self.intel.load_full()
    }

    /// The current policies.
    pub fn policies(&self) -> Arc<Policies> {
        self.policies.load_full()
    }

    /// The risk settings.
    pub fn settings(&self) -> &RiskSettings {
        &self.settings
    }

    /// Re-reads intel and policies; on any error nothing changes.
    pub async fn reload(&self, store: &Store) -> Result<Loaded, LoadError> {
        let intel = load_intel(&self.settings).await?;
        let policies = load_policies(&self.settings, store).await?;
        let loaded = Loaded {
            intel: intel.describe(),
            policies: policies.set.len(),
        };
        self.intel.store(Arc::new(intel));
        self.policies.store(Arc::new(policies));
        Ok(loaded)
    }

    /// Re-reads only the policies (after an API change); on error nothing changes.
    pub async fn reload_policies(&self, store: &Store) -> Result<(), LoadError> {
        let policies = load_policies(&self.settings, store).await?;
        self.policies.store(Arc::new(policies));
        Ok(())
    }

    /// Compiles the policies as they would be with the API-created ones replaced by `api`:
    /// how a change through the API is validated before it is stored.
    pub fn try_api_policies(&self, api: Vec<ConditionalAccessPolicy>) -> Result<(), PolicyError> {
        let current = self.policies();
        let files = current.files.clone();
        Policies::compile(files, api, current.builtin.clone()).map(|_| ())
    }
}

async fn read(path: &Path) -> Result<IntelSource, LoadError> {
    let name = path.display().to_string();
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(IntelSource::new(name, bytes)),
        Err(e) => Err(LoadError::Read {
            file: name,
            message: e.to_string(),
        }),
    }
}

async fn read_all(paths: &[PathBuf]) -> Result<Vec<IntelSource>, LoadError> {
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        out.push(read(p).await?);
    }
    Ok(out)
}

async fn read_opt(path: &Option<PathBuf>) -> Result<Option<IntelSource>, LoadError> {
    match path {
        Some(p) => Ok(Some(read(p).await?)),
        None => Ok(None),
    }
}

async fn load_intel(s: &RiskSettings) -> Result<Intel, LoadError> {
    let sources = IntelSources {
        anonymous_ips: read_all(&s.anonymous_ips).await?,
        malicious_ips: read_all(&s.malicious_ips).await?,
        named_locations: read_opt(&s.named_locations).await?,
        geo: read_opt(&s.geo).await?,
        asn: read_opt(&s.asn).await?,
    };
    // Parsing a large geo table takes a while: keep it off the async workers.
    tokio::task::spawn_blocking(move || Intel::load(sources))
        .await
        .map_err(|e| LoadError::Read {
            file: "intel".into(),
            message: e.to_string(),
        })?
        .map_err(LoadError::from)
}

async fn load_policies(s: &RiskSettings, store: &Store) -> Result<Policies, LoadError> {
    let mut files = Vec::new();
    let mut builtin = IdentityProtectionPolicies::default();
    if let Some(dir) = &s.policies_dir {
        let mut entries = tokio::fs::read_dir(dir)
            .await
            .map_err(|e| LoadError::Read {
                file: dir.display().to_string(),
                message: e.to_string(),
            })?;
        let mut paths = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(|e| LoadError::Read {
            file: dir.display().to_string(),
            message: e.to_string(),
        })? {
            let path = entry.path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext == "json" || ext == "toml" {
                paths.push(path);
            }
        }
        // File-name order is evaluation order, so it does not depend on the file system.
        paths.sort();
        for path in paths {
            let name = path.display().to_string();
            let text = tokio::fs::read_to_string(&path)
                .await
                .map_err(|e| LoadError::Read {
                    file: name.clone(),
                    message: e.to_string(),
                })?;
            if path.file_name().and_then(|f| f.to_str()) == Some(IDENTITY_PROTECTION_FILE) {
                builtin = policy::parse_identity_protection_toml(&name, &text)
                    .map_err(LoadError::Policy)?;
            } else {
                for p in policy::parse_policy_file(&name, &text).map_err(LoadError::Policy)? {
                    files.push((name.clone(), p));
                }
            }
        }
    }
    let api = api_policies(store).await?;
    Policies::compile(files, api, builtin).map_err(LoadError::Policy)
}

/// The API-created policies as stored.
pub async fn api_policies(store: &Store) -> Result<Vec<ConditionalAccessPolicy>, LoadError> {
    let mut out = Vec::new();
    for (id, json) in store.list_ca_policies().await? {
        out.push(
            policy::parse_policy_json(&format!("database policy {id}"), &json)
                .map_err(LoadError::Policy)?,
        );
    }
    Ok(out)
}
