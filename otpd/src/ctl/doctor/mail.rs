//! Mail servers: each one reachable, speaking SMTP, and (for `starttls` and `tls`) completing a
//! verified TLS handshake, without sending anything. `--send-to` sends for real, through otpd.

use std::time::Duration;

use common::config::{MailConfig, MailTransport, Security, SmtpServer};

use super::Finding;
use crate::mail::smtp::{Failure, SmtpTarget};
use crate::mail::tls;

/// The longest one server check may take, whatever its configured timeout.
const MAX_CHECK: Duration = Duration::from_secs(15);

/// Checks the configured transport.
pub fn check(mail: &MailConfig) -> Vec<Finding> {
    if let MailTransport::Sendmail { path } = &mail.transport {
        let mut findings = vec![sendmail(path)];
        findings.extend(super::sendmail::check(
            path,
            mail.from.as_str(),
            &super::sendmail::System,
        ));
        return findings;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return vec![Finding::skipped(
                "mail",
                format!("cannot start the runtime for the mail checks: {e}"),
            )];
        }
    };
    let hello = crate::mail::hello::fully_qualified_name();
    let mut findings: Vec<Finding> = mail
        .servers
        .iter()
        .map(|server| runtime.block_on(check_server(server, hello.as_deref())))
        .collect();
    findings.extend(
        crate::mail::hello::warnings(mail, hello.as_deref())
            .into_iter()
            .map(|warning| {
                Finding::warning(
                    "mail",
                    warning,
                    "mail servers that check EHLO names refuse a name without a domain",
                )
            }),
    );
    findings
}

fn sendmail(path: &std::path::Path) -> Finding {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {
            Finding::ok("mail", format!("mail goes through {}", path.display()))
        }
        Ok(_) => Finding::problem(
            "mail",
            format!("{} is not an executable file", path.display()),
            "install a mail transfer agent (apt install postfix, or msmtp-mta) or list [[mail.servers]]",
        ),
        Err(e) => Finding::problem(
            "mail",
            format!("{}: {e}", path.display()),
            "install a mail transfer agent (apt install postfix, or msmtp-mta) or list [[mail.servers]]",
        ),
    }
}

/// Connects, sets up TLS as configured and says EHLO, with otpd's own SMTP client; no AUTH
/// (doctor does not read the password) and no mail.
async fn check_server(server: &SmtpServer, hello: Option<&str>) -> Finding {
    let what = format!(
        "mail server {} ({}:{}, {})",
        server.name,
        server.host,
        server.port,
        server.security.as_str()
    );
    let tls = match server.security {
        Security::None => None,
        Security::Starttls | Security::Tls => match tls::parameters(server) {
            Ok(tls) => Some(tls),
            Err(e) => {
                return Finding::problem(
                    "mail",
                    format!("{what}: {}", e.reason),
                    "fix ca_file in this [[mail.servers]] entry",
                );
            }
        },
    };
    // The EHLO name otpd itself would give.
    let target = SmtpTarget::new(server, tls, None, hello);
    let limit = server.timeout.min(MAX_CHECK);
    match target.check_connection(limit).await {
        Ok(()) => Finding::ok(
            "mail",
            match server.security {
                Security::None => format!("{what} answers (plain text)"),
                Security::Starttls | Security::Tls => {
                    format!(
                        "{what} answers and its TLS certificate is valid for {}",
                        server.host
                    )
                }
            },
        ),
        Err(e) => Finding::problem("mail", format!("{what}: {e}"), fix_for(e.failure, server)),
    }
}

fn fix_for(failure: Failure, server: &SmtpServer) -> String {
    match failure {
        Failure::Tls => format!(
            "the server's certificate must be valid for {} and trusted: set ca_file for a private CA, or fix the server's certificate",
            server.host
        ),
        Failure::Network => format!(
            "nothing answers on {}:{}: start the mail server or correct host/port",
            server.host, server.port
        ),
        Failure::Timeout => {
            "check the host and port, and that a firewall lets otpd's machine reach it".into()
        }
        Failure::Missing | Failure::Transient | Failure::Permanent | Failure::Busy => {
            "check host, port and security of this [[mail.servers]] entry".to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Level;
    use super::*;
    use std::path::Path;

    fn config(port: u16) -> MailConfig {
        let text = format!(
            "[mail]\nfrom = \"otp@example.com\"\n[[mail.servers]]\nname = \"dead\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\ntimeout_seconds = 3\nhello_name = \"box.example.com\"\n"
        );
        common::config::Config::parse(&text, Path::new("t.toml"))
            .unwrap()
            .mail
    }

    #[test]
    fn a_dead_mail_server_is_a_problem_naming_host_and_port() {
        // Bind and drop: the port is free and nothing listens on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let f = check(&config(port));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].level, Level::Problem, "{f:?}");
        assert!(f[0].message.contains(&format!("127.0.0.1:{port}")), "{f:?}");
    }
}
