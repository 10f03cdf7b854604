//! Mail delivery: builds the code message and hands it to the configured SMTP servers in order.
//!
//! Each server keeps a pool of connections (lettre's pool), so a burst of logins does not open a
//! connection per message. Each attempt has the server's own timeout and the whole send has a
//! total deadline; a transient failure moves on to the next server, a permanent rejection (5xx)
//! stops, because another server will not make a wrong address right.

pub mod message;

use std::time::Duration;

use common::config::{MailConfig, Security, SmtpServer};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

pub use message::{CodeMail, Sender};

/// The longest a whole send may take, over all servers.
pub const TOTAL_DEADLINE: Duration = Duration::from_secs(20);

/// A configured server with its connection pool.
struct ServerTransport {
    name: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    timeout: Duration,
}

impl std::fmt::Debug for ServerTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTransport")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Sends code mails through the configured servers.
#[derive(Debug)]
pub struct Mailer {
    sender: Sender,
    servers: Vec<ServerTransport>,
    total_deadline: Duration,
}

/// Why the mailer could not be set up from the config.
#[derive(Debug, thiserror::Error)]
pub enum MailSetupError {
    /// The server's security mode is not available in this build.
    #[error("mail server {name}: security \"{mode}\" is not supported by this build yet")]
    Unsupported {
        /// The server's name.
        name: String,
        /// The mode.
        mode: &'static str,
    },
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

impl Mailer {
    /// Prepares a pooled transport per configured server. Connections are opened on first use.
    pub fn new(config: &MailConfig) -> Result<Mailer, MailSetupError> {
        let servers = config
            .servers
            .iter()
            .map(server_transport)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Mailer {
            sender: Sender {
                from: config.from.clone(),
                from_name: config.from_name.clone(),
            },
            servers,
            total_deadline: TOTAL_DEADLINE,
        })
    }

    /// Sends `mail`, returning the name of the server that accepted it.
    pub async fn send(&self, mail: &CodeMail<'_>) -> Result<String, MailFailure> {
        let message = message::build(&self.sender, mail).map_err(|e| MailFailure {
            attempts: vec![Attempt {
                server: "-".into(),
                error: e.to_string(),
            }],
        })?;
        let mut attempts = Vec::new();
        let all = async {
            for server in &self.servers {
                let result =
                    tokio::time::timeout(server.timeout, server.transport.send(message.clone()))
                        .await;
                match result {
                    Ok(Ok(_)) => return Ok(server.name.clone()),
                    Ok(Err(e)) => {
                        let permanent = e.is_permanent();
                        attempts.push(Attempt {
                            server: server.name.clone(),
                            error: e.to_string(),
                        });
                        if permanent {
                            break;
                        }
                    }
                    Err(_) => attempts.push(Attempt {
                        server: server.name.clone(),
                        error: format!("no answer within {:?}", server.timeout),
                    }),
                }
            }
            Err(())
        };
        match tokio::time::timeout(self.total_deadline, all).await {
            Ok(Ok(name)) => Ok(name),
            Ok(Err(())) | Err(_) => Err(MailFailure { attempts }),
        }
    }
}

fn server_transport(server: &SmtpServer) -> Result<ServerTransport, MailSetupError> {
    let builder = match server.security {
        // Config validation allows plaintext only to loopback or with insecure_plaintext.
        Security::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&server.host),
        Security::Starttls => {
            return Err(MailSetupError::Unsupported {
                name: server.name.clone(),
                mode: "starttls",
            });
        }
        Security::Tls => {
            return Err(MailSetupError::Unsupported {
                name: server.name.clone(),
                mode: "tls",
            });
        }
    };
    let transport = builder
        .port(server.port)
        .timeout(Some(server.timeout))
        .pool_config(PoolConfig::new().max_size(8))
        .build();
    Ok(ServerTransport {
        name: server.name.clone(),
        transport,
        timeout: server.timeout,
    })
}
