//! `[secrets]`: the master key secrets at rest are sealed with (see [`crate::vault`]).
//!
//! ```toml
//! [secrets]
//! master_key_file = "secrets/contoso.key"     # or master_key_env = "TENANTD_MASTER_KEY"
//! previous_master_key_files = ["secrets/contoso.old.key"]   # during a rotation
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Validator;
use crate::vault::{MasterKey, Vault};
use serde::Deserialize;

/// `[secrets]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecrets {
    master_key_file: Option<PathBuf>,
    master_key_env: Option<String>,
    #[serde(default)]
    previous_master_key_files: Vec<PathBuf>,
}

impl Validator {
    /// The vault the section names; its key files are read now, relative to the config file.
    pub(super) fn secrets(&mut self, raw: RawSecrets, file: &str) -> Option<Arc<Vault>> {
        let base = Path::new(file).parent().unwrap_or(Path::new(""));
        let at = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let current = match (raw.master_key_file, raw.master_key_env) {
            (Some(path), None) => self.key_file("secrets.master_key_file", &at(path)),
            (None, Some(var)) => match std::env::var(&var) {
                Ok(text) => self.key_text("secrets.master_key_env", &text, &var),
                Err(_) => {
                    self.bad(
                        "secrets.master_key_env",
                        format!("the environment variable {var} to be set"),
                    );
                    None
                }
            },
            _ => {
                self.bad(
                    "secrets.master_key_file",
                    "exactly one of master_key_file or master_key_env",
                );
                None
            }
        };
        let mut previous = Vec::new();
        for (i, path) in raw.previous_master_key_files.into_iter().enumerate() {
            let key = format!("secrets.previous_master_key_files[{i}]");
            previous.push(self.key_file(&key, &at(path)));
        }
        let current = current?;
        let previous = previous.into_iter().collect::<Option<Vec<_>>>()?;
        if previous.iter().any(|k| k.id() == current.id()) {
            self.bad(
                "secrets.previous_master_key_files",
                "keys other than the current master key",
            );
            return None;
        }
        Some(Arc::new(Vault::new(current, previous)))
    }

    fn key_file(&mut self, key: &str, path: &Path) -> Option<MasterKey> {
        match std::fs::read_to_string(path) {
            Ok(text) => self.key_text(key, &text, &path.display().to_string()),
            Err(e) => {
                self.bad(
                    key,
                    format!(
                        "a readable master key file, {} is not ({e})",
                        path.display()
                    ),
                );
                None
            }
        }
    }

    fn key_text(&mut self, key: &str, text: &str, from: &str) -> Option<MasterKey> {
        match MasterKey::from_text(text) {
            Ok(k) => Some(k),
            Err(e) => {
                self.bad(key, format!("{e}; {from} holds something else"));
                None
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::{Config, tests::GOOD};

    fn dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("tenantd-secrets-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn absent_means_the_key_beside_the_database() {
        assert!(Config::parse(GOOD, "x.toml").unwrap().secrets.is_none());
    }

    #[test]
    fn key_files_are_read_relative_to_the_config() {
        let d = dir();
        std::fs::write(d.join("m.key"), crate::vault::MasterKey::generate()).unwrap();
        std::fs::write(d.join("old.key"), crate::vault::MasterKey::generate()).unwrap();
        let file = d.join("t.toml").display().to_string();
        let text = format!(
            "{GOOD}[secrets]\nmaster_key_file = \"m.key\"\nprevious_master_key_files = [\"old.key\"]\n"
        );
        let c = Config::parse(&text, &file).unwrap();
        assert_eq!(c.secrets.unwrap().current_id().len(), 8);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn mistakes_name_the_key() {
        let d = dir();
        std::fs::write(d.join("bad.key"), "not a key").unwrap();
        std::fs::write(d.join("m.key"), crate::vault::MasterKey::generate()).unwrap();
        let file = d.join("t.toml").display().to_string();
        for (section, key, expected) in [
            (
                "master_key_file = \"missing.key\"",
                "secrets.master_key_file",
                "readable",
            ),
            (
                "master_key_file = \"bad.key\"",
                "secrets.master_key_file",
                "base64",
            ),
            ("", "secrets.master_key_file", "exactly one"),
            (
                "master_key_file = \"m.key\"\nmaster_key_env = \"X\"",
                "secrets.master_key_file",
                "exactly one",
            ),
            (
                "master_key_env = \"TENANTD_TEST_UNSET_MASTER_KEY\"",
                "secrets.master_key_env",
                "to be set",
            ),
            (
                "master_key_file = \"m.key\"\nprevious_master_key_files = [\"m.key\"]",
                "secrets.previous_master_key_files",
                "other than",
            ),
        ] {
            let e = Config::parse(&format!("{GOOD}[secrets]\n{section}\n"), &file).unwrap_err();
            let p = e.problems.iter().find(|p| p.key == key);
            assert!(
                p.is_some_and(|p| p.expected.contains(expected)),
                "{section}: {e}"
            );
        }
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn postgres_needs_the_section() {
        let text = GOOD.replace("sqlite://", "postgres://db.test/");
        let e = Config::parse(&text, "x.toml").unwrap_err();
        assert!(e.problems.iter().any(|p| p.key == "secrets"), "{e}");
    }
}
