//! `[mail]`: how the tenant sends mail (one-time codes). Either SMTP (`smtp_url`, `from`, and
//! credentials whose password comes from an environment variable), or `outbox = true` for
//! development: mail is kept in the database and shown at `/dev/outbox`, never sent. Without
//! the section the tenant sends no mail, and codes by email are not offered.

use super::Validator;
use serde::Deserialize;
use std::fmt;

/// `[mail]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMail {
    #[serde(default)]
    outbox: bool,
    smtp_url: Option<String>,
    from: Option<String>,
    username: Option<String>,
    password_env: Option<String>,
    timeout_secs: Option<i64>,
}

/// How the tenant sends mail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MailSettings {
    /// No `[mail]` section: no mail is sent, so codes by email are not offered.
    #[default]
    Off,
    /// `outbox = true`: mail is stored in the database and listed at `/dev/outbox` (development
    /// only: anyone who can open that page reads every code).
    Outbox,
    /// SMTP.
    Smtp(SmtpSettings),
}

impl MailSettings {
    /// Whether mail can be sent (codes by email are offered).
    pub fn enabled(&self) -> bool {
        !matches!(self, MailSettings::Off)
    }

    /// Whether mail goes to the development outbox.
    pub fn outbox(&self) -> bool {
        matches!(self, MailSettings::Outbox)
    }
}

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: plain connection upgraded with STARTTLS, which is required (RFC 3207).
    StartTls,
    /// `smtps://`: TLS from the first byte (RFC 8314).
    Tls,
    /// `smtp://…?tls=none` to a loopback host only: a local development mail catcher.
    PlainLoopback,
}

/// The SMTP server and the sender.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// The URL as written (no credentials: they are refused in it).
    pub url: String,
    /// Host name or IP address (TLS checks the certificate against it).
    pub host: String,
    /// Port: as written, else 587 for STARTTLS and 465 for TLS (25 without TLS).
    pub port: u16,
    /// How the connection is secured.
    pub security: SmtpSecurity,
    /// The `From` mailbox, e.g. `Contoso <no-reply@contoso.example>`.
    pub from: String,
    /// SMTP AUTH user name and password (the password from the environment).
    pub credentials: Option<(String, String)>,
    /// Limit for one message's connection and dialogue, in seconds.
    pub timeout_secs: u64,
}

/// The password is never printed.
impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("url", &self.url)
            .field("security", &self.security)
            .field("from", &self.from)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(user, _)| (user, "***")),
            )
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// Default limit for sending one message.
const DEFAULT_TIMEOUT_SECS: u64 = 10;

/// Whether `host` (as in a URL, IPv6 in brackets) is this machine.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The parts of an SMTP URL, or what was expected instead.
fn parse_smtp_url(text: &str) -> Result<(String, u16, SmtpSecurity), String> {
    const EXPECTED: &str = "smtp://HOST[:PORT] (STARTTLS, port 587 by default) or smtps://HOST[:PORT] (TLS, port 465 by default)";
    let url = url::Url::parse(text).map_err(|_| format!("{EXPECTED}, got {text:?}"))?;
    let mut security = match url.scheme() {
        "smtp" => SmtpSecurity::StartTls,
        "smtps" => SmtpSecurity::Tls,
        _ => return Err(format!("{EXPECTED}, got {text:?}")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: it may hold a password.
        return Err(
            "a URL without user or password (set username, and password_env to the environment variable holding the password)"
                .into(),
        );
    }
    let host = match url.host_str() {
        Some(h) if !h.is_empty() => h.to_owned(),
        _ => return Err(format!("{EXPECTED}, got {text:?} (no host)")),
    };
    if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
        return Err(format!("{EXPECTED}, got {text:?} (no path or fragment)"));
    }
    match url.query() {
        None => {}
        Some("tls=none") if security == SmtpSecurity::StartTls && is_loopback(&host) => {
            security = SmtpSecurity::PlainLoopback;
        }
        Some("tls=none") => {
            return Err(format!(
                "{EXPECTED}; ?tls=none (no TLS) only with smtp:// to a loopback host (a local mail catcher), got {text:?}"
            ));
        }
        Some(_) => {
            return Err(format!(
                "{EXPECTED} without a query (except ?tls=none for a loopback mail catcher), got {text:?}"
            ));
        }
    }
    let port = url.port().unwrap_or(match security {
        SmtpSecurity::StartTls => 587,
        SmtpSecurity::Tls => 465,
        SmtpSecurity::PlainLoopback => 25,
    });
    Ok((host, port, security))
}

impl Validator {
    pub(super) fn mail(&mut self, raw: RawMail) -> MailSettings {
        self.mail_with(raw, |var| std::env::var(var).ok())
    }

    /// [`Validator::mail`] with the environment given as a lookup.
    fn mail_with(&mut self, raw: RawMail, env: impl Fn(&str) -> Option<String>) -> MailSettings {
        if let Some(from) = &raw.from
            && from.parse::<lettre::message::Mailbox>().is_err()
        {
            self.bad(
                "mail.from",
                format!(
                    "a mailbox such as \"Contoso <no-reply@contoso.example>\" or \"no-reply@contoso.example\", got {from:?}"
                ),
            );
        }
        let timeout_secs = match raw.timeout_secs {
            None => DEFAULT_TIMEOUT_SECS,
            Some(t) => match u64::try_from(t) {
                Ok(t @ 1..=120) => t,
                _ => {
                    self.bad(
                        "mail.timeout_secs",
                        format!("seconds from 1 to 120, got {t}"),
                    );
                    DEFAULT_TIMEOUT_SECS
                }
            },
        };
        let Some(smtp_url) = raw.smtp_url else {
            if !raw.outbox {
                self.bad(
                    "mail",
                    "smtp_url (and from) to send mail, or outbox = true to keep it in the database for development",
                );
                return MailSettings::Off;
            }
            for (key, given) in [
                ("username", raw.username.is_some()),
                ("password_env", raw.password_env.is_some()),
                ("timeout_secs", raw.timeout_secs.is_some()),
            ] {
                if given {
                    self.bad(
                        format!("mail.{key}"),
                        "only with smtp_url (the outbox sends nothing)",
                    );
                }
            }
            return MailSettings::Outbox;
        };
        if raw.outbox {
            self.bad(
                "mail.outbox",
                "either outbox = true (development) or smtp_url, not both",
            );
        }
        let parsed = parse_smtp_url(&smtp_url);
        if let Err(expected) = &parsed {
            self.bad("mail.smtp_url", expected.clone());
        }
        if raw.from.is_none() {
            self.bad(
                "mail.from",
                "the sender's mailbox, such as \"Contoso <no-reply@contoso.example>\" (required with smtp_url)",
            );
        }
        let credentials = match (raw.username, raw.password_env) {
            (None, None) => None,
            (Some(_), None) => {
                self.bad(
                    "mail.password_env",
                    "the name of the environment variable holding the SMTP password (required with username)",
                );
                None
            }
            (None, Some(_)) => {
                self.bad(
                    "mail.username",
                    "the SMTP user name (required with password_env)",
                );
                None
            }
            (Some(user), Some(var)) => {
                match env(&var) {
                    Some(password) if !password.is_empty() => Some((user, password)),
                    _ => {
                        self.bad(
                        "mail.password_env",
                        format!("the environment variable {var} to be set (it holds the SMTP password)"),
                    );
                        None
                    }
                }
            }
        };
        match parsed {
            Ok((host, port, security)) => MailSettings::Smtp(SmtpSettings {
                url: smtp_url,
                host,
                port,
                security,
                from: raw.from.unwrap_or_default(),
                credentials,
                timeout_secs,
            }),
            Err(_) => MailSettings::Off,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::{Config, tests::GOOD};
    use super::*;

    fn validate(text: &str, env: &[(&str, &str)]) -> (MailSettings, Vec<String>) {
        let raw: RawMail = toml::from_str(text).unwrap();
        let mut v = Validator {
            file: "x.toml".into(),
            problems: Vec::new(),
        };
        let settings = v.mail_with(raw, |var| {
            env.iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| (*v).to_owned())
        });
        let problems = v
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.expected))
            .collect();
        (settings, problems)
    }

    #[test]
    fn mail_is_off_without_the_section_and_the_outbox_is_for_development() {
        let c = Config::parse(GOOD, "x.toml").unwrap();
        assert_eq!(c.mail, MailSettings::Off);
        assert!(!c.mail.enabled());
        let c = Config::parse(&format!("{GOOD}[mail]\noutbox = true\n"), "x.toml").unwrap();
        assert_eq!(c.mail, MailSettings::Outbox);
        assert!(c.mail.enabled() && c.mail.outbox());
    }

    #[test]
    fn smtp_urls_name_how_the_connection_is_secured() {
        let pw = [("SMTP_PW", "s3cret-password")];
        let (s, problems) = validate(
            "smtp_url = \"smtp://mail.contoso.example\"\nfrom = \"Contoso <no-reply@contoso.example>\"\nusername = \"tenantd\"\npassword_env = \"SMTP_PW\"\n",
            &pw,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let MailSettings::Smtp(smtp) = s else {
            panic!("{s:?}")
        };
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.security),
            ("mail.contoso.example", 587, SmtpSecurity::StartTls)
        );
        assert_eq!(
            smtp.credentials,
            Some(("tenantd".into(), "s3cret-password".into()))
        );
        assert_eq!(smtp.timeout_secs, 10);
        assert!(
            !format!("{smtp:?}").contains("s3cret"),
            "the password is never printed"
        );
        let cases = [
            ("smtps://mail.contoso.example", 465, SmtpSecurity::Tls),
            (
                "smtp://mail.contoso.example:2525",
                2525,
                SmtpSecurity::StartTls,
            ),
            (
                "smtp://127.0.0.1:1025?tls=none",
                1025,
                SmtpSecurity::PlainLoopback,
            ),
            (
                "smtp://[::1]:1025?tls=none",
                1025,
                SmtpSecurity::PlainLoopback,
            ),
        ];
        for (url, port, security) in cases {
            let (s, problems) = validate(
                &format!("smtp_url = \"{url}\"\nfrom = \"no-reply@contoso.example\"\n"),
                &[],
            );
            assert!(problems.is_empty(), "{url}: {problems:?}");
            let MailSettings::Smtp(smtp) = s else {
                panic!("{url}: {s:?}")
            };
            assert_eq!((smtp.port, smtp.security), (port, security), "{url}");
            assert_eq!(smtp.credentials, None);
        }
    }

    #[test]
    fn mistakes_are_named_by_key() {
        let from = "from = \"no-reply@contoso.example\"\n";
        let cases: &[(&str, &str)] = &[
            (
                "",
                "mail: smtp_url (and from) to send mail, or outbox = true",
            ),
            ("outbox = false\n", "mail: smtp_url (and from)"),
            (
                "outbox = true\nsmtp_url = \"smtp://mail.example\"\n",
                "mail.outbox: either outbox = true (development) or smtp_url, not both",
            ),
            (
                "outbox = true\nusername = \"u\"\n",
                "mail.username: only with smtp_url",
            ),
            (
                "smtp_url = \"http://mail.example\"\n",
                "mail.smtp_url: smtp://HOST[:PORT] (STARTTLS",
            ),
            (
                "smtp_url = \"smtp://user:hunter2@mail.example\"\n",
                "mail.smtp_url: a URL without user or password",
            ),
            (
                "smtp_url = \"smtp://mail.example?tls=none\"\n",
                "only with smtp:// to a loopback host",
            ),
            (
                "smtp_url = \"smtps://127.0.0.1?tls=none\"\n",
                "only with smtp:// to a loopback host",
            ),
            (
                "smtp_url = \"smtp://mail.example?auth=plain\"\n",
                "without a query",
            ),
            (
                "smtp_url = \"smtp://mail.example\"\n",
                "mail.from: the sender's mailbox",
            ),
            (
                "smtp_url = \"smtp://mail.example\"\nfrom = \"not a mailbox\"\n",
                "mail.from: a mailbox such as",
            ),
            (
                "smtp_url = \"smtp://mail.example\"\nusername = \"u\"\n",
                "mail.password_env: the name of the environment variable",
            ),
            (
                "smtp_url = \"smtp://mail.example\"\npassword_env = \"SMTP_PW\"\n",
                "mail.username: the SMTP user name",
            ),
            (
                "smtp_url = \"smtp://mail.example\"\nusername = \"u\"\npassword_env = \"UNSET_VAR\"\n",
                "mail.password_env: the environment variable UNSET_VAR to be set",
            ),
            (
                "smtp_url = \"smtp://mail.example\"\ntimeout_secs = 0\n",
                "mail.timeout_secs: seconds from 1 to 120, got 0",
            ),
        ];
        for (text, expected) in cases {
            // A case about something else gets a good `from`, so only its own mistake shows.
            let needs_from = text.contains("smtp_url")
                && !text.contains("from =")
                && !expected.starts_with("mail.from");
            let with_from = if needs_from {
                format!("{text}{from}")
            } else {
                (*text).to_owned()
            };
            let (_, problems) = validate(&with_from, &[]);
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{text:?}: {problems:?}"
            );
            assert!(
                !problems.iter().any(|p| p.contains("hunter2")),
                "a password in the URL is not echoed: {problems:?}"
            );
        }
    }

    #[test]
    fn mistakes_in_the_section_are_named_with_their_line() {
        let at = GOOD.lines().count();
        let e = Config::parse(
            &format!(
                "{GOOD}[mail]\nsmtp_url = \"smtp://mail.example\"\nfrom = \"nope\"\nrelay = 1\n"
            ),
            "x.toml",
        )
        .unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains(&format!("x.toml:{}: mail.relay: ", at + 4)),
            "{shown}"
        );
        let e = Config::parse(
            &format!("{GOOD}[mail]\nsmtp_url = \"smtp://mail.example\"\nfrom = \"nope\"\n"),
            "x.toml",
        )
        .unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains(&format!("x.toml:{}: mail.from: a mailbox such as", at + 3)),
            "{shown}"
        );
    }
}
