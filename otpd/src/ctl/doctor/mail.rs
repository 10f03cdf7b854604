//! Mail servers: each one reachable, speaking SMTP, and (for `starttls` and `tls`) completing a
//! verified TLS handshake, without sending anything. `--send-to` sends for real, through otpd.

use std::time::Duration;

use common::config::{MailConfig, MailTransport, Security, SmtpServer};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, Tokio1Executor};

use super::Finding;

/// The longest one server check may take, whatever its configured timeout.
const MAX_CHECK: Duration = Duration::from_secs(15);

/// Checks the configured transport.
pub fn check(mail: &MailConfig) -> Vec<Finding> {
    if let MailTransport::Sendmail { path } = &mail.transport {
        return vec![sendmail(path)];
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
    mail.servers
        .iter()
        .map(|server| runtime.block_on(check_server(server)))
        .collect()
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

async fn check_server(server: &SmtpServer) -> Finding {
    let what = format!(
        "mail server {} ({}:{}, {})",
        server.name,
        server.host,
        server.port,
        server.security.as_str()
    );
    let transport = match transport(server) {
        Ok(transport) => transport,
        Err(e) => {
            return Finding::problem(
                "mail",
                format!("{what}: {e}"),
                "fix ca_file in this [[mail.servers]] entry",
            );
        }
    };
    let limit = server.timeout.min(MAX_CHECK);
    match tokio::time::timeout(limit, transport.test_connection()).await {
        Ok(Ok(true)) => Finding::ok(
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
        Ok(Ok(false)) => Finding::problem(
            "mail",
            format!("{what} connected but did not answer NOOP"),
            "check the server's logs",
        ),
        Ok(Err(e)) => Finding::problem(
            "mail",
            format!("{what}: {e}"),
            fix_for(&e.to_string(), server),
        ),
        Err(_) => Finding::problem(
            "mail",
            format!("{what}: no answer within {limit:?}"),
            "check the host and port, and that a firewall lets otpd's machine reach it",
        ),
    }
}

fn fix_for(error: &str, server: &SmtpServer) -> String {
    let lower = error.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        format!(
            "the server's certificate must be valid for {} and trusted: set ca_file for a private CA, or fix the server's certificate",
            server.host
        )
    } else if lower.contains("refused") {
        format!(
            "nothing listens on {}:{}: start the mail server or correct host/port",
            server.host, server.port
        )
    } else {
        "check host, port and security of this [[mail.servers]] entry".to_string()
    }
}

fn transport(server: &SmtpServer) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&server.host)
        .port(server.port)
        .timeout(Some(server.timeout.min(MAX_CHECK)));
    if let Some(name) = &server.hello_name {
        builder = builder.hello_name(ClientId::Domain(name.clone()));
    }
    let tls = |wrap: fn(TlsParameters) -> Tls| -> Result<Tls, String> {
        let mut params = TlsParameters::builder(server.host.clone());
        if let Some(ca) = &server.ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            params = params.add_root_certificate(cert);
        }
        Ok(wrap(params.build().map_err(|e| e.to_string())?))
    };
    builder = match server.security {
        Security::None => builder,
        Security::Starttls => builder.tls(tls(Tls::Required)?),
        Security::Tls => builder.tls(tls(Tls::Wrapper)?),
    };
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::super::Level;
    use super::*;
    use std::path::Path;

    fn config(port: u16) -> MailConfig {
        let text = format!(
            "[mail]\nfrom = \"otp@example.com\"\n[[mail.servers]]\nname = \"dead\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\ntimeout_seconds = 3\n"
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
