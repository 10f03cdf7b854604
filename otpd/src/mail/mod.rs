//! Mail delivery: builds the code mail and hands it to the local `sendmail` or to the
//! configured SMTP servers in order.
//!
//! The pieces: [`message`] builds the mail from the templates ([`render`] makes the values
//! safe), [`smtp`] speaks to one server (TLS, AUTH, a few pooled connections), [`failover`]
//! walks the servers within the total deadline and [`breaker`] skips one that keeps failing,
//! [`sendmail`] hands mail to the local MTA, [`dkim`] signs, [`tls`] sets up certificate
//! checks and [`secret_file`] reads the password and key files. Everything that can be wrong
//! in the setup (an unreadable password file, a bad CA file, no sendmail) is found in
//! [`Mailer::new`], at start or reload, not at the first login.

pub mod breaker;
pub mod dkim;
pub mod failover;
pub mod hello;
pub mod message;
pub mod pool;
pub mod render;
pub mod secret_file;
pub mod sendmail;
pub mod smtp;
pub mod smtp_client;
pub mod smtp_text;
pub mod tls;

/// A message that could not be built, as a failure of the send.
fn unbuilt(error: message::MessageError) -> MailFailure {
    MailFailure {
        attempts: vec![Attempt {
            server: "-".into(),
            error: error.to_string(),
        }],
    }
}

#[cfg(test)]
pub(crate) mod test_server;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use common::config::{EmailAddress, MailConfig, MailTransport, Security, SmtpServer};

use crate::clock::{Clock, SystemClock};

pub use message::{CodeMail, MessageError, Sender};
pub use render::Values;

use dkim::{Dkim, DkimError};
use failover::Server;
use secret_file::SecretFileError;
use sendmail::Sendmail;
use tls::TlsSetupError;

/// Sends code mails (and admins' test mails).
#[derive(Debug)]
pub struct Mailer {
    sender: Sender,
    transport: Transport,
    total_timeout: Duration,
    clock: Arc<dyn Clock>,
    /// This machine's name, for test mails.
    host: String,
}

#[derive(Debug)]
enum Transport {
    Smtp(Vec<Server>),
    Sendmail(Sendmail),
}

/// Why the mailer could not be set up from the config.
#[derive(Debug, thiserror::Error)]
pub enum MailSetupError {
    /// A password file is unsafe or unreadable.
    #[error("mail server {server}: password_file {source}")]
    Password {
        /// The server's name.
        server: String,
        /// What is wrong with the file.
        source: SecretFileError,
    },
    /// A server's TLS could not be prepared (e.g. a bad `ca_file`).
    #[error("{0}")]
    Tls(#[from] TlsSetupError),
    /// The DKIM key could not be loaded.
    #[error("{0}")]
    Dkim(#[from] DkimError),
    /// The sendmail program is missing.
    #[error("{0}")]
    Sendmail(String),
    /// An address from the config did not pass lettre's parser.
    #[error("{0}")]
    Message(#[from] MessageError),
}

/// One failed attempt at one server.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The server's name.
    pub server: String,
    /// What went wrong, as the server or the network said it.
    pub error: String,
}

/// No server accepted the message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no mail server accepted the message: {}", describe(.attempts))]
pub struct MailFailure {
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
}

fn describe(attempts: &[Attempt]) -> String {
    if attempts.is_empty() {
        return "the deadline passed before any server answered".to_string();
    }
    attempts
        .iter()
        .map(|a| format!("{}: {}", a.server, a.error))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The result of a test mail through one server, for `otpctl test-mail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// The server's name (`sendmail` for the sendmail transport).
    pub server: String,
    /// `Ok` when the server accepted the message; otherwise what failed (connect, TLS, AUTH,
    /// a refusal) with the server's reply.
    pub outcome: Result<(), String>,
}

/// How one SMTP server has been doing, for `otpctl status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHealth {
    /// The server's name.
    pub name: String,
    /// Failures in a row (0 after a success).
    pub failures_in_a_row: u32,
    /// Until when (Unix seconds) logins skip this server, if they do now.
    pub skipped_until: Option<i64>,
    /// The last result since otpd started or reloaded: when, and the error if it failed.
    pub last: Option<(i64, Result<(), String>)>,
}

impl Mailer {
    /// Prepares the transport the config names, reading password and key files and checking
    /// CA files and the sendmail program now. SMTP connections are opened on first use.
    pub fn new(config: &MailConfig) -> Result<Mailer, MailSetupError> {
        Mailer::with_clock(config, Arc::new(SystemClock))
    }

    /// [`Mailer::new`] with the clock the breaker reads, so tests need not sleep.
    pub fn with_clock(
        config: &MailConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Mailer, MailSetupError> {
        let dkim = config
            .dkim
            .as_ref()
            .map(|d| Dkim::load(d, config.reply_to.is_some()))
            .transpose()?;
        let sender = Sender::new(
            &config.from,
            config.from_name.as_deref(),
            config.reply_to.as_ref(),
            config.message.clone(),
            dkim,
        )?;
        let transport = match &config.transport {
            MailTransport::Sendmail { path } => {
                Transport::Sendmail(Sendmail::new(path).map_err(MailSetupError::Sendmail)?)
            }
            MailTransport::Smtp => {
                let hello = hello::fully_qualified_name();
                for warning in hello::warnings(config, hello.as_deref()) {
                    tracing::warn!("{warning}");
                }
                let servers = config
                    .servers
                    .iter()
                    .map(|server| smtp_server(server, hello.as_deref()))
                    .collect::<Result<Vec<_>, _>>()?;
                Transport::Smtp(servers)
            }
        };
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".to_string());
        Ok(Mailer {
            sender,
            transport,
            total_timeout: config.total_timeout,
            clock,
            host,
        })
    }

    /// Sends `mail`, returning the name of the server that accepted it (`sendmail` for the
    /// local MTA). At most one server accepts it; see [`failover`].
    pub async fn send(&self, mail: &CodeMail<'_>) -> Result<String, MailFailure> {
        self.send_within(mail, self.total_timeout).await
    }

    /// [`Mailer::send`] within `budget` (at most `total_timeout_seconds`): what is left of a
    /// delivery's time after the channels tried before the mail.
    pub async fn send_within(
        &self,
        mail: &CodeMail<'_>,
        budget: Duration,
    ) -> Result<String, MailFailure> {
        let out = message::code_mail(&self.sender, mail).map_err(unbuilt)?;
        self.deliver(&out, budget.min(self.total_timeout)).await
    }

    /// Sends a notification, like [`Mailer::send`].
    pub async fn send_notice(
        &self,
        notice: &message::NoticeMail<'_>,
    ) -> Result<String, MailFailure> {
        let out = message::notice_mail(&self.sender, notice).map_err(unbuilt)?;
        self.deliver(&out, self.total_timeout).await
    }

    /// How long one mail may take through every server (`[mail] total_timeout_seconds`): the
    /// budget of a whole delivery, every channel together.
    pub fn total_timeout(&self) -> Duration {
        self.total_timeout
    }

    /// This machine's name, as the mails say it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Sends a built message through the configured transport within `budget`.
    async fn deliver(
        &self,
        out: &message::Outgoing,
        budget: Duration,
    ) -> Result<String, MailFailure> {
        match &self.transport {
            Transport::Smtp(servers) => {
                failover::send(servers, out, budget, self.clock.as_ref()).await
            }
            Transport::Sendmail(program) => program
                .send(out, budget)
                .await
                .map(|()| sendmail::NAME.to_string())
                .map_err(|error| MailFailure {
                    attempts: vec![Attempt {
                        server: sendmail::NAME.into(),
                        error,
                    }],
                }),
        }
    }

    /// Sends a test message to `to` through each configured server, or only the one named
    /// `server`, one after the other, each over a fresh connection so that connect, TLS and
    /// AUTH are really tried. Skipped servers are tried too; a success closes their breaker.
    /// An unknown name gives one failed result that lists the names.
    pub async fn send_test(&self, to: &EmailAddress, server: Option<&str>) -> Vec<TestResult> {
        match &self.transport {
            Transport::Smtp(servers) => {
                let chosen: Vec<&Server> = match server {
                    None => servers.iter().collect(),
                    Some(name) => match servers.iter().find(|s| s.target.name == name) {
                        Some(found) => vec![found],
                        None => {
                            let names: Vec<&str> =
                                servers.iter().map(|s| s.target.name.as_str()).collect();
                            return vec![unknown_server(name, &names.join(", "))];
                        }
                    },
                };
                let mut results = Vec::with_capacity(chosen.len());
                for s in chosen {
                    let outcome =
                        match message::test_mail(&self.sender, to, &self.host, &s.target.name) {
                            Ok(out) => s
                                .attempt(&out, s.target.timeout, false, self.clock.as_ref())
                                .await
                                .map_err(|e| e.text),
                            Err(e) => Err(e.to_string()),
                        };
                    results.push(TestResult {
                        server: s.target.name.clone(),
                        outcome,
                    });
                }
                results
            }
            Transport::Sendmail(program) => {
                if let Some(name) = server.filter(|&n| n != sendmail::NAME) {
                    return vec![unknown_server(name, sendmail::NAME)];
                }
                let outcome = match message::test_mail(&self.sender, to, &self.host, sendmail::NAME)
                {
                    Ok(out) => program.send(&out, self.total_timeout).await,
                    Err(e) => Err(e.to_string()),
                };
                vec![TestResult {
                    server: sendmail::NAME.into(),
                    outcome,
                }]
            }
        }
    }

    /// Says goodbye on every idle SMTP connection, so the servers log clean ends: at shutdown.
    pub async fn close_idle(&self) {
        if let Transport::Smtp(servers) = &self.transport {
            for server in servers {
                server.target.close_idle().await;
            }
        }
    }

    /// Each SMTP server's recent history since start or the last reload, in config order;
    /// empty with the sendmail transport.
    pub fn server_health(&self) -> Vec<ServerHealth> {
        let Transport::Smtp(servers) = &self.transport else {
            return Vec::new();
        };
        let now = self.clock.now();
        servers
            .iter()
            .map(|s| {
                let breaker = s.breaker();
                ServerHealth {
                    name: s.target.name.clone(),
                    failures_in_a_row: breaker.failures_in_a_row(),
                    skipped_until: breaker.skipped_until(now),
                    last: breaker.last().cloned(),
                }
            })
            .collect()
    }
}

fn unknown_server(name: &str, names: &str) -> TestResult {
    TestResult {
        server: name.to_string(),
        outcome: Err(format!(
            "no mail server is named {:?}; the configured ones are: {names}",
            common::text::escape_for_log(name)
        )),
    }
}

/// The warning for a server that gets codes in clear text, or `None`. Plaintext to a loopback
/// address never leaves the machine (the packaged config sends to the local MTA on 127.0.0.1),
/// so it is not warned about: a warning on every start that points at no risk teaches admins to
/// ignore the log. Plaintext to any other host needs `insecure_plaintext = true` and is warned
/// about every time.
fn plaintext_warning(server: &SmtpServer) -> Option<String> {
    if server.security != Security::None || server.is_loopback() {
        return None;
    }
    Some(format!(
        "mail server {}: security = \"none\" with insecure_plaintext: codes cross the network to {} in clear text",
        common::text::escape_for_log(&server.name),
        common::text::escape_for_log(&server.host)
    ))
}

/// One server: its TLS parameters, its password read and checked now, and a warning when
/// codes would cross the wire in clear text.
fn smtp_server(server: &SmtpServer, hello: Option<&str>) -> Result<Server, MailSetupError> {
    if let Some(warning) = plaintext_warning(server) {
        tracing::warn!("{warning}");
    }
    let tls = match server.security {
        Security::None => None,
        Security::Starttls | Security::Tls => Some(tls::parameters(server)?),
    };
    let password = server
        .auth
        .as_ref()
        .map(|auth| {
            secret_file::read_password(&auth.password_file).map_err(|source| {
                MailSetupError::Password {
                    server: server.name.clone(),
                    source,
                }
            })
        })
        .transpose()?;
    Ok(Server::new(smtp::SmtpTarget::new(
        server, tls, password, hello,
    )))
}
