//! Sending mail: over SMTP with `lettre` (rustls; STARTTLS required on `smtp://`, TLS on
//! `smtps://`), or into the development outbox (`[mail] outbox = true`), which keeps each
//! message in the database for `/dev/outbox` and sends nothing.

use crate::config::{MailSettings, SmtpSecurity, SmtpSettings};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;
use store::{OutboxMail, Store, StoreError};

/// How long the development outbox keeps a message.
pub const OUTBOX_RETENTION_SECS: i64 = 7 * 86_400;

/// A plain-text message to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The recipient's address.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The recipient is not an address a message can be sent to.
    #[error("not a deliverable address")]
    Address,
    /// The SMTP server could not be set up from the settings.
    #[error("SMTP settings: {0}")]
    Settings(String),
    /// The message could not be built.
    #[error("building the message: {0}")]
    Message(String),
    /// The SMTP server could not be reached, or refused the message.
    #[error("SMTP: {0}")]
    Smtp(String),
    /// The outbox could not store it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where the tenant's mail goes.
pub enum Mailer {
    /// The development outbox (the store's `mail_outbox`).
    Outbox,
    /// An SMTP server.
    Smtp {
        /// The connection pool to the server.
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// The `From` mailbox.
        from: Mailbox,
    },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Outbox => f.write_str("Mailer::Outbox"),
            Mailer::Smtp { from, .. } => write!(f, "Mailer::Smtp(from {from})"),
        }
    }
}

impl Mailer {
    /// The mailer the settings describe; `None` when mail is off. Nothing is connected yet.
    pub fn new(settings: &MailSettings) -> Result<Option<Mailer>, MailError> {
        match settings {
            MailSettings::Off => Ok(None),
            MailSettings::Outbox => Ok(Some(Mailer::Outbox)),
            MailSettings::Smtp(smtp) => Self::smtp(smtp).map(Some),
        }
    }

    fn smtp(s: &SmtpSettings) -> Result<Mailer, MailError> {
        let settings = |e: lettre::transport::smtp::Error| MailError::Settings(e.to_string());
        // An IPv6 address is written in brackets in the URL, bare for the connection.
        let host = s.host.trim_start_matches('[').trim_end_matches(']');
        let builder = match s.security {
            SmtpSecurity::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(settings)?
            }
            SmtpSecurity::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(settings)?
            }
            // Only ever a loopback host (the config refuses any other).
            SmtpSecurity::PlainLoopback => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            }
        };
        let mut builder = builder
            .port(s.port)
            .timeout(Some(Duration::from_secs(s.timeout_secs)));
        if let Some((user, password)) = &s.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let from = s
            .from
            .parse::<Mailbox>()
            .map_err(|e| MailError::Settings(format!("from: {e}")))?;
        Ok(Mailer::Smtp {
            transport: builder.build(),
            from,
        })
    }

    /// Sends `mail` (or, for the outbox, stores it at `now`).
    pub async fn send(&self, store: &Store, mail: &Mail, now: i64) -> Result<(), MailError> {
        match self {
            Mailer::Outbox => {
                store
                    .add_outbox_mail(&OutboxMail {
                        id: uuid::Uuid::now_v7().to_string(),
                        recipient: mail.to.clone(),
                        subject: mail.subject.clone(),
                        body: mail.body.clone(),
                        created_at: now,
                        expires_at: now + OUTBOX_RETENTION_SECS,
                    })
                    .await?;
                Ok(())
            }
            Mailer::Smtp { transport, from } => {
                let to = mail.to.parse::<Mailbox>().map_err(|_| MailError::Address)?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(mail.subject.clone())
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.body.clone())
                    .map_err(|e| MailError::Message(e.to_string()))?;
                transport
                    .send(message)
                    .await
                    .map_err(|e| MailError::Smtp(e.to_string()))?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// A loopback SMTP server that accepts one message and returns the DATA it received.
    async fn one_message_server() -> (u16, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"220 test ESMTP\r\n").await.unwrap();
            let mut data = String::new();
            let mut in_data = false;
            while let Some(line) = lines.next_line().await.unwrap() {
                if in_data {
                    if line == "." {
                        in_data = false;
                        write.write_all(b"250 queued\r\n").await.unwrap();
                    } else {
                        data.push_str(&line);
                        data.push('\n');
                    }
                    continue;
                }
                let verb = line.split(' ').next().unwrap_or_default().to_uppercase();
                let reply: &[u8] = match verb.as_str() {
                    "EHLO" | "HELO" => b"250 test\r\n",
                    "DATA" => {
                        in_data = true;
                        b"354 go on\r\n"
                    }
                    "QUIT" => {
                        write.write_all(b"221 bye\r\n").await.unwrap();
                        break;
                    }
                    _ => b"250 ok\r\n",
                };
                write.write_all(reply).await.unwrap();
            }
            data
        });
        (port, server)
    }

    #[tokio::test]
    async fn smtp_sends_a_plain_text_message() {
        let (port, server) = one_message_server().await;
        let smtp = SmtpSettings {
            url: format!("smtp://127.0.0.1:{port}?tls=none"),
            host: "127.0.0.1".into(),
            port,
            security: SmtpSecurity::PlainLoopback,
            from: "Contoso <no-reply@contoso.test>".into(),
            credentials: None,
            timeout_secs: 5,
        };
        let mailer = Mailer::new(&MailSettings::Smtp(smtp)).unwrap().unwrap();
        let store = Store::connect(
            "sqlite::memory:",
            std::sync::Arc::new(crate::vault::Vault::ephemeral()),
        )
        .await
        .unwrap();
        let mail = Mail {
            to: "alice@contoso.test".into(),
            subject: "Your code".into(),
            body: "Your code is 12345678.".into(),
        };
        mailer.send(&store, &mail, 100).await.unwrap();
        drop(mailer);
        let data = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .unwrap()
            .unwrap();
        assert!(
            data.contains("From: Contoso <no-reply@contoso.test>"),
            "{data}"
        );
        assert!(data.contains("To: alice@contoso.test"), "{data}");
        assert!(data.contains("Subject: Your code"), "{data}");
        assert!(data.contains("Your code is 12345678."), "{data}");
        assert!(store.outbox_mail(10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_outbox_keeps_mail_and_sends_nothing() {
        let mailer = Mailer::new(&MailSettings::Outbox).unwrap().unwrap();
        assert!(Mailer::new(&MailSettings::Off).unwrap().is_none());
        let store = Store::connect(
            "sqlite::memory:",
            std::sync::Arc::new(crate::vault::Vault::ephemeral()),
        )
        .await
        .unwrap();
        let mail = Mail {
            to: "alice@contoso.test".into(),
            subject: "Your code".into(),
            body: "Your code is 12345678.".into(),
        };
        mailer.send(&store, &mail, 100).await.unwrap();
        let kept = store.outbox_mail(10).await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            (kept[0].recipient.as_str(), kept[0].subject.as_str()),
            ("alice@contoso.test", "Your code")
        );
        assert_eq!(kept[0].body, mail.body);
        assert_eq!(kept[0].expires_at, 100 + OUTBOX_RETENTION_SECS);
    }
}
