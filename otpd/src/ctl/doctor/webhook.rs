//! Webhook channels: each `[[channels.webhook]]` set up as otpd sets it up (its credentials file
//! private and well-formed, its `ca_file` usable), then each endpoint's host resolved, connected
//! to, and (for `https://`) a TLS handshake verified with the channel's own trust: the system
//! store plus `ca_file`. And, per profile, whether its channels failing one after the other could
//! outlast the module's wait for the code (then a later channel delivers to nobody).
//!
//! Only a connection and a handshake, closed with close_notify: no HTTP request at all. A
//! gateway such as Twilio sends an SMS, and bills it, for a request that would reach it; even a
//! `HEAD /` is a request a gateway may log, rate-limit or answer with a redirect, and it tells
//! no more about whether the code would get through than the handshake does (the credentials
//! and the body are checked only by a real login, or by the gateway's own test numbers).

use std::time::Duration;

use common::config::webhook_template::UrlTemplate;
use common::config::{Channel, Config, DEFAULTS_PROFILE, WebhookChannel};
use tokio::io::AsyncWriteExt;

use super::Finding;
use crate::mail::tls;
use crate::webhook::{WebhookSender, endpoint_label};

/// The longest one endpoint check may take, whatever the channel's timeout.
const MAX_CHECK: Duration = Duration::from_secs(15);

/// A warning for each profile whose webhook channels, all failing slowly, use up the whole
/// time a delivery has (the mail's `total_timeout_seconds`, for every channel together, so
/// that a delivery ends before the module stops waiting): every endpoint its `timeout_seconds`.
/// The channels after them, the mail among them, would then never be tried.
pub fn deadlines(config: &Config) -> Vec<Finding> {
    let profiles = std::iter::once((DEFAULTS_PROFILE, &config.defaults))
        .chain(config.profiles.iter().map(|(name, s)| (name.as_str(), s)));
    let budget = config.mail.total_timeout;
    let mut findings = Vec::new();
    for (profile, settings) in profiles {
        let mut parts = Vec::new();
        let mut worst = Duration::ZERO;
        for channel in &settings.channels {
            let Channel::Webhook(name) = channel else {
                continue;
            };
            let Some(hook) = config.webhooks.iter().find(|w| &w.name == name) else {
                continue;
            };
            let count = u32::try_from(hook.endpoints.len()).unwrap_or(u32::MAX);
            worst += hook.timeout.saturating_mul(count);
            parts.push(format!("{name} {count} x {} s", hook.timeout.as_secs()));
        }
        let last_is_webhook = matches!(settings.channels.last(), Some(Channel::Webhook(_)));
        if worst >= budget && !last_is_webhook {
            findings.push(Finding::warning(
                "webhook",
                format!(
                    "profile {profile}: its webhook channels may take {} s when each fails slowly ({}), all of the {} s a delivery has (the mail's total_timeout_seconds): the channels after them would never be tried",
                    worst.as_secs(),
                    parts.join(", "),
                    budget.as_secs()
                ),
                "lower timeout_seconds (or the endpoints) of its webhook channels, or raise the mail's total_timeout_seconds (keeping it under the module's mail_timeout=, 25 s by default)",
            ));
        }
    }
    findings
}

/// One finding for the setup of each channel (a problem ends that channel's checks), one per
/// endpoint.
pub fn check(channels: &[WebhookChannel]) -> Vec<Finding> {
    if channels.is_empty() {
        return Vec::new();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return vec![Finding::skipped(
                "webhook",
                format!("cannot start the runtime for the webhook checks: {e}"),
            )];
        }
    };
    let mut findings = Vec::new();
    for channel in channels {
        if let Err(e) = WebhookSender::new(channel) {
            findings.push(Finding::problem(
                "webhook",
                e.to_string(),
                "otpd will not start with this channel: fix the file named (credentials_file: mode 600, owned by root or otpd, first line basic USER:PASSWORD or bearer TOKEN; run doctor as root, who can read it)",
            ));
            continue;
        }
        if let Some(path) = &channel.credentials_file {
            findings.push(Finding::ok(
                "webhook",
                format!(
                    "webhook channel {}: credentials_file {} is private and holds credentials",
                    channel.name,
                    path.display()
                ),
            ));
        }
        let trust = match tls::verifying_config(channel.ca_file.as_deref()) {
            Ok(trust) => trust,
            Err(e) => {
                findings.push(Finding::problem(
                    "webhook",
                    format!("webhook channel {}: {e}", channel.name),
                    "fix ca_file in this [[channels.webhook]] entry",
                ));
                continue;
            }
        };
        for (index, endpoint) in channel.endpoints.iter().enumerate() {
            let what = endpoint_label(&channel.name, index, endpoint);
            let limit = channel.timeout.min(MAX_CHECK);
            let checked = runtime.block_on(async {
                tokio::time::timeout(limit, check_endpoint(endpoint, &trust))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Unreached::Timeout(format!(
                            "no answer within {} s",
                            limit.as_secs()
                        )))
                    })
            });
            findings.push(match checked {
                Ok(said) => Finding::ok("webhook", format!("{what}: {said}")),
                Err(unreached) => {
                    let fix = unreached.fix(endpoint);
                    Finding::problem("webhook", format!("{what}: {}", unreached.reason()), fix)
                }
            });
        }
    }
    findings
}

/// Why an endpoint could not be reached.
#[derive(Debug)]
enum Unreached {
    /// The host name has no address.
    Resolve(String),
    /// Nothing accepted the connection.
    Connect(String),
    /// Too slow.
    Timeout(String),
    /// The TLS handshake failed: usually the certificate.
    Tls(String),
}

impl Unreached {
    fn reason(&self) -> &str {
        match self {
            Unreached::Resolve(r)
            | Unreached::Connect(r)
            | Unreached::Timeout(r)
            | Unreached::Tls(r) => r,
        }
    }

    fn fix(&self, endpoint: &UrlTemplate) -> String {
        match self {
            Unreached::Resolve(_) => format!(
                "check the host name {} in endpoints and this machine's DNS",
                endpoint.host()
            ),
            Unreached::Connect(_) | Unreached::Timeout(_) => format!(
                "nothing answers on {}: check endpoints, and that a firewall lets otpd's machine reach it",
                endpoint.authority()
            ),
            Unreached::Tls(_) => format!(
                "the gateway's certificate must be valid for {} and trusted: set ca_file for a private CA, or fix the endpoint's host name",
                endpoint.host()
            ),
        }
    }
}

/// Resolves, connects and (for `https://`) completes a verified TLS handshake, then closes;
/// sends no request.
async fn check_endpoint(
    endpoint: &UrlTemplate,
    trust: &std::sync::Arc<rustls::ClientConfig>,
) -> Result<String, Unreached> {
    let (host, port) = (endpoint.host(), endpoint.port());
    let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Unreached::Resolve(format!("{host} does not resolve: {e}")))?
        .collect();
    let mut failures = Vec::new();
    let mut connected = None;
    for address in &addresses {
        match tokio::net::TcpStream::connect(address).await {
            Ok(stream) => {
                connected = Some((stream, *address));
                break;
            }
            Err(e) => failures.push(format!("{address}: {e}")),
        }
    }
    let Some((stream, address)) = connected else {
        return Err(Unreached::Connect(if failures.is_empty() {
            format!("{host} has no address")
        } else {
            failures.join("; ")
        }));
    };
    if !endpoint.is_https() {
        return Ok(format!(
            "{address} accepts connections (plain http, loopback); no request sent"
        ));
    }
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| Unreached::Tls(format!("{host} is not a name TLS can check: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::clone(trust));
    let mut tls = connector
        .connect(name, stream)
        .await
        .map_err(|e| Unreached::Tls(format!("TLS handshake with {address} failed: {e}")))?;
    // Closed as a client that changed its mind: close_notify, nothing sent before it.
    let _ = tls.shutdown().await;
    Ok(format!(
        "{address} answers and its TLS certificate is valid for {host}; no request sent"
    ))
}

#[cfg(test)]
mod tests {
    use super::super::Level;
    use super::*;
    use std::path::Path;

    fn channels(endpoints: &str, extra: &str) -> Vec<WebhookChannel> {
        let text = format!(
            "[mail]\nfrom = \"otp@example.com\"\n[[channels.webhook]]\nname = \"sms\"\nendpoints = [{endpoints}]\nbody = \"B={{code}}\"\ntimeout_seconds = 3\n{extra}"
        );
        common::config::Config::parse(&text, Path::new("t.toml"))
            .unwrap()
            .webhooks
    }

    #[test]
    fn a_closed_port_is_a_problem_naming_the_endpoint_and_an_open_one_is_fine() {
        let closed = crate::test_support::closed_port();
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = open.local_addr().unwrap().port();
        let f = check(&channels(
            &format!("\"http://127.0.0.1:{closed}/x\", \"http://127.0.0.1:{port}/x\""),
            "",
        ));
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].level, Level::Problem, "{f:?}");
        assert!(
            f[0].message
                .starts_with(&format!("webhook:sms endpoint 1 (127.0.0.1:{closed}): ")),
            "{f:?}"
        );
        assert_eq!(f[1].level, Level::Ok, "{f:?}");
        assert!(f[1].message.contains("no request sent"), "{f:?}");
    }

    #[test]
    fn webhooks_that_could_use_up_the_delivery_are_a_warning_naming_the_profile() {
        let config = |timeout: u32| {
            common::config::Config::parse(
                &format!(
                    "[mail]\nfrom = \"otp@example.com\"\n[defaults]\nchannels = [\"sms\", \"email\"]\n[profiles.mail_only]\nchannels = [\"email\"]\n[[channels.webhook]]\nname = \"sms\"\nendpoints = [\"https://a.example/x\", \"https://b.example/x\"]\nbody = \"B={{code}}\"\ntimeout_seconds = {timeout}\n"
                ),
                Path::new("t.toml"),
            )
            .unwrap()
        };
        // 2 x 2 s of the mail's 20 s: the mail is still tried.
        assert_eq!(deadlines(&config(2)), Vec::new());
        // 2 x 10 s: all of it.
        let f = deadlines(&config(10));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].level, Level::Warning);
        assert!(
            f[0].message
                .starts_with("profile defaults: its webhook channels may take 20 s when each fails slowly (sms 2 x 10 s), all of the 20 s a delivery has"),
            "{f:?}"
        );
    }

    #[test]
    fn a_readable_credentials_file_is_a_problem_and_no_endpoint_is_tried() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cred");
        std::fs::write(&path, "bearer tk\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let f = check(&channels(
            "\"http://127.0.0.1:1/x\"",
            &format!("credentials_file = {:?}", path.display().to_string()),
        ));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].level, Level::Problem, "{f:?}");
        assert!(f[0].message.contains("credentials_file"), "{f:?}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let f = check(&channels(
            "\"http://127.0.0.1:1/x\"",
            &format!("credentials_file = {:?}", path.display().to_string()),
        ));
        assert_eq!(f[0].level, Level::Ok, "{f:?}");
        assert!(f[0].message.contains("is private"), "{f:?}");
    }
}
