//! ID Protection at run time: the tenant's IP intelligence and its policies (Conditional Access
//! files, policies created through the admin API, and the built-in user-risk and sign-in-risk
//! policies), loaded at start-up and reloaded on SIGHUP or through the admin API.
//!
//! The files come first, with no store: [`Prepared::read`] reads and checks every intel and
//! policy file `[risk]` names and reports every problem in all of them (file, line, key, what
//! was expected), which is how the config check finds them before a tenant creates anything.
//! The policies created through the API are added from the store after.
//!
//! A load is all or nothing: every file is read and checked before anything is swapped in, so a
//! bad line in one file leaves the tenant serving with the previous good intel and policies.

use crate::config::{Problem, RiskSettings};
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
    /// Intel or policy files are wrong: every problem, each naming its file (and line).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Files(Vec<Problem>),
    /// The policies from files and the admin API break Graph's rules together (each names
    /// the policy and where it comes from).
    #[error("{0}")]
    Policy(PolicyError),
    /// The database could not be read (API-created policies).
    #[error("policies in the database: {0}")]
    Store(StoreError),
    /// The blocking task reading the files did not finish.
    #[error("reading intel and policy files: {0}")]
    Task(String),
}

// Not `#[from]`: that would make the store error the source as well as part of the message,
// and a report of the error chain would print it twice.
impl From<StoreError> for LoadError {
    fn from(e: StoreError) -> Self {
        LoadError::Store(e)
    }
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
    /// The database's part of the policies as they were last compiled: how a replica notices
    /// a change another replica made ([`Protection::follow_store`]).
    compiled_from: std::sync::Mutex<StoredPolicies>,
}

/// The policies' rows in the database: the API-created policies `(id, json)` and the states
/// file policies were switched to `(id, state)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct StoredPolicies {
    api: Vec<(String, String)>,
    states: Vec<(String, String)>,
}

impl StoredPolicies {
    async fn read(store: &Store) -> Result<StoredPolicies, LoadError> {
        Ok(StoredPolicies {
            api: store.list_ca_policies().await?,
            states: store.ca_policy_states().await?,
        })
    }

    /// The policies compiled from the file policies `files` (switched as stored), the
    /// API-created ones, and the built-in ones.
    fn compile(
        &self,
        files: Vec<(String, ConditionalAccessPolicy)>,
        builtin: IdentityProtectionPolicies,
    ) -> Result<Policies, LoadError> {
        Policies::compile(self.switch(files), self.api()?, builtin).map_err(LoadError::Policy)
    }

    /// The API-created policies, parsed.
    fn api(&self) -> Result<Vec<ConditionalAccessPolicy>, LoadError> {
        self.api
            .iter()
            .map(|(id, json)| {
                policy::parse_policy_json(&format!("database policy {id}"), json)
                    .map_err(LoadError::Policy)
            })
            .collect()
    }

    /// The file policies with the states admins switched them to: a file is the source of a
    /// policy, but switching it on, to report-only or off is an admin's everyday act, and must
    /// not wait for someone to edit a file (nor be undone by the next reload).
    fn switch(
        &self,
        mut files: Vec<(String, ConditionalAccessPolicy)>,
    ) -> Vec<(String, ConditionalAccessPolicy)> {
        let states: HashMap<&str, &str> = self
            .states
            .iter()
            .map(|(id, state)| (id.as_str(), state.as_str()))
            .collect();
        for (_, p) in &mut files {
            let Some(state) = states.get(p.id.as_str()) else {
                continue;
            };
            match serde_json::from_value(serde_json::Value::String((*state).to_owned())) {
                Ok(s) => p.state = s,
                Err(_) => {
                    tracing::error!(policy = %p.id, state = %state, "unreadable policy state switch ignored")
                }
            }
        }
        files
    }
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
    /// Reads the files and the API-created policies; fails with every problem in the files.
    pub async fn load(settings: RiskSettings, store: &Store) -> Result<Protection, LoadError> {
        let prepared = Prepared::read_blocking(settings.clone()).await?;
        Self::with_files(settings, prepared, store).await
    }

    /// The files as [`Prepared::read`] read them, with the API-created policies from the store.
    pub async fn with_files(
        settings: RiskSettings,
        prepared: Prepared,
        store: &Store,
    ) -> Result<Protection, LoadError> {
        let stored = StoredPolicies::read(store).await?;
        let policies = stored.compile(prepared.files, prepared.builtin)?;
        Ok(Protection {
            settings,
            intel: ArcSwap::from_pointee(prepared.intel),
            policies: ArcSwap::from_pointee(policies),
            compiled_from: std::sync::Mutex::new(stored),
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
        let prepared = Prepared::read_blocking(self.settings.clone()).await?;
        let stored = StoredPolicies::read(store).await?;
        let policies = stored.compile(prepared.files, prepared.builtin)?;
        let loaded = Loaded {
            intel: prepared.intel.describe(),
            policies: policies.set.len(),
        };
        self.intel.store(Arc::new(prepared.intel));
        self.set_policies(policies, stored);
        Ok(loaded)
    }

    /// Re-reads only the policies (after an API change); on error nothing changes.
    pub async fn reload_policies(&self, store: &Store) -> Result<(), LoadError> {
        let settings = self.settings.clone();
        let (files, builtin) = tokio::task::spawn_blocking(move || {
            let mut problems = Vec::new();
            let files = read_policy_files(&settings, &mut problems);
            if problems.is_empty() {
                Ok(files)
            } else {
                Err(LoadError::Files(problems))
            }
        })
        .await
        .map_err(|e| LoadError::Task(e.to_string()))??;
        let stored = StoredPolicies::read(store).await?;
        let policies = stored.compile(files, builtin)?;
        self.set_policies(policies, stored);
        Ok(())
    }

    /// Recompiles the policies when their rows in the database changed since the last compile
    /// (another replica created, changed or switched one); returns whether it did. Every
    /// replica calls this periodically, so a change made on one holds on all within that
    /// period.
    pub async fn follow_store(&self, store: &Store) -> Result<bool, LoadError> {
        let now = StoredPolicies::read(store).await?;
        let unchanged = self
            .compiled_from
            .lock()
            .map(|seen| *seen == now)
            .unwrap_or(false);
        if unchanged {
            return Ok(false);
        }
        self.reload_policies(store).await?;
        Ok(true)
    }

    fn set_policies(&self, policies: Policies, stored: StoredPolicies) {
        self.policies.store(Arc::new(policies));
        match self.compiled_from.lock() {
            Ok(mut seen) => *seen = stored,
            Err(poisoned) => *poisoned.into_inner() = stored,
        }
    }

    /// Compiles the policies as they would be with the API-created ones replaced by `api`:
    /// how a change through the API is validated before it is stored.
    pub fn try_api_policies(&self, api: Vec<ConditionalAccessPolicy>) -> Result<(), PolicyError> {
        let current = self.policies();
        let files = current.files.clone();
        Policies::compile(files, api, current.builtin.clone()).map(|_| ())
    }
}

/// The intel and the policy files a tenant's `[risk]` names, read and checked, with no store:
/// the config check reads them before anything is created, and a tenant starts with them.
#[derive(Debug)]
pub struct Prepared {
    intel: Intel,
    files: Vec<(String, ConditionalAccessPolicy)>,
    builtin: IdentityProtectionPolicies,
}

impl Prepared {
    /// Reads every intel and policy file `settings` names and checks them (file policies are
    /// also compiled together with the built-in ones, for Graph's rules). The error is every
    /// problem in all of them: each bad file (every bad line of an IP list), each policy parse
    /// error with its line and field, each broken rule with its policy, each naming the file and
    /// the config key that names it.
    pub fn read(settings: &RiskSettings) -> Result<Prepared, Vec<Problem>> {
        let mut problems = Vec::new();
        // Which config key named each file, for the problems intel reports by file name.
        let mut keys: HashMap<String, String> = HashMap::new();
        let mut source = |key: String, path: &Path, problems: &mut Vec<Problem>| {
            let name = path.display().to_string();
            keys.entry(name.clone()).or_insert_with(|| key.clone());
            match std::fs::read(path) {
                Ok(bytes) => Some(IntelSource::new(name, bytes)),
                Err(e) => {
                    problems.push(Problem::new(name, key, format!("a readable file ({e})")));
                    None
                }
            }
        };
        let mut list = |key: &str, paths: &[PathBuf], problems: &mut Vec<Problem>| {
            paths
                .iter()
                .enumerate()
                .filter_map(|(i, p)| source(format!("{key}[{i}]"), p, problems))
                .collect::<Vec<_>>()
        };
        let anonymous_ips = list("risk.anonymous_ips", &settings.anonymous_ips, &mut problems);
        let malicious_ips = list("risk.malicious_ips", &settings.malicious_ips, &mut problems);
        let mut one = |key: &str, path: &Option<PathBuf>, problems: &mut Vec<Problem>| {
            path.as_deref()
                .and_then(|p| source(key.to_owned(), p, problems))
        };
        let sources = IntelSources {
            anonymous_ips,
            malicious_ips,
            named_locations: one(
                "risk.named_locations",
                &settings.named_locations,
                &mut problems,
            ),
            geo: one("risk.geo", &settings.geo, &mut problems),
            asn: one("risk.asn", &settings.asn, &mut problems),
        };
        let intel = match Intel::load_each(sources) {
            Ok(intel) => Some(intel),
            Err(errors) => {
                problems.extend(errors.into_iter().map(|e| intel_problem(e, &keys)));
                None
            }
        };
        let (files, builtin) = read_policy_files(settings, &mut problems);
        match intel {
            Some(intel) if problems.is_empty() => Ok(Prepared {
                intel,
                files,
                builtin,
            }),
            _ => Err(problems),
        }
    }

    /// [`Prepared::read`] off the async workers (a large geo table takes a while to parse).
    pub async fn read_blocking(settings: RiskSettings) -> Result<Prepared, LoadError> {
        tokio::task::spawn_blocking(move || Prepared::read(&settings))
            .await
            .map_err(|e| LoadError::Task(e.to_string()))?
            .map_err(LoadError::Files)
    }

    /// The intel, in words.
    pub fn describe(&self) -> String {
        self.intel.describe()
    }
}

fn intel_problem(e: IntelError, keys: &HashMap<String, String>) -> Problem {
    let key = keys.get(&e.file).cloned().unwrap_or_else(|| "risk".into());
    let expected = match &e.content {
        Some(c) => format!("{} (`{c}`)", e.message),
        None => e.message.clone(),
    };
    Problem::new(e.file, key, expected).at(e.line)
}

/// Reads, parses and checks the policy files of `policies_dir`, in file-name order (which is
/// evaluation order, so it does not depend on the file system). Problems are added to
/// `problems`; what could be read is returned.
fn read_policy_files(
    settings: &RiskSettings,
    problems: &mut Vec<Problem>,
) -> (
    Vec<(String, ConditionalAccessPolicy)>,
    IdentityProtectionPolicies,
) {
    const KEY: &str = "risk.policies_dir";
    let mut files = Vec::new();
    let mut builtin = IdentityProtectionPolicies::default();
    let Some(dir) = &settings.policies_dir else {
        return (files, builtin);
    };
    let dir_name = dir.display().to_string();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(Problem::new(
                dir_name,
                KEY,
                format!("a readable directory of policy files ({e})"),
            ));
            return (files, builtin);
        }
    };
    let mut paths = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let path = entry.path();
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
                if ext == "json" || ext == "toml" {
                    paths.push(path);
                }
            }
            Err(e) => problems.push(Problem::new(
                dir_name.clone(),
                KEY,
                format!("a readable directory of policy files ({e})"),
            )),
        }
    }
    paths.sort();
    let mut builtin_file = None;
    for path in paths {
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                problems.push(Problem::new(
                    name,
                    KEY,
                    format!("a readable policy file ({e})"),
                ));
                continue;
            }
        };
        if path.file_name().and_then(|f| f.to_str()) == Some(IDENTITY_PROTECTION_FILE) {
            match policy::parse_identity_protection_toml(&name, &text) {
                Ok(b) => builtin = b,
                Err(e) => problems.extend(policy_problems(e, &name, &[])),
            }
            builtin_file = Some(name);
        } else {
            match policy::parse_policy_file(&name, &text) {
                Ok(policies) => files.extend(policies.into_iter().map(|p| (name.clone(), p))),
                Err(e) => problems.extend(policy_problems(e, &name, &[])),
            }
        }
    }
    // Graph's rules, for the file policies with the built-in ones (the API's are checked
    // against these when they are added).
    let policies: Vec<ConditionalAccessPolicy> = files.iter().map(|(_, p)| p.clone()).collect();
    if let Err(e) = PolicySet::compile(policies, &builtin) {
        let fallback = builtin_file.unwrap_or(dir_name);
        problems.extend(policy_problems(e, &fallback, &files));
    }
    (files, builtin)
}

/// A policy error as problems: a parse error at its file, line and field; each broken rule at
/// the file of its policy (a built-in policy's, or one the set as a whole breaks, at
/// `fallback`).
fn policy_problems(
    e: PolicyError,
    fallback: &str,
    files: &[(String, ConditionalAccessPolicy)],
) -> Vec<Problem> {
    match e {
        PolicyError::Parse {
            file,
            line,
            field,
            message,
        } => {
            let key = if field.is_empty() {
                "risk.policies_dir".to_owned()
            } else {
                field
            };
            vec![Problem::new(file, key, message).at(line)]
        }
        PolicyError::Invalid(errors) => errors
            .into_iter()
            .map(|fe| {
                let file = files
                    .iter()
                    .find(|(_, p)| p.id == fe.policy || p.display_name == fe.policy)
                    .map_or(fallback, |(f, _)| f.as_str());
                let key = if fe.field.is_empty() {
                    "risk.policies_dir".to_owned()
                } else {
                    fe.field
                };
                Problem::new(file, key, format!("policy `{}`: {}", fe.policy, fe.message))
            })
            .collect(),
    }
}

/// Whether `id` is a policy from a file, whose state an admin may switch.
pub fn is_file_policy(policies: &Policies, id: &str) -> bool {
    matches!(policies.origin(id), Some(Origin::File(_)))
}
