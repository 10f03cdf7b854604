//! Codes by webhook: one `[[channels.webhook]]` as an HTTPS client (reqwest on rustls, with
//! the same certificate checks as SMTP and LDAP: the system store plus the channel's
//! `ca_file`), its endpoints tried in order until one answers 2xx.
//!
//! Redirects are not followed (the credentials and the code would follow them) and no proxy
//! from the environment is used. Errors name the channel and the endpoint's host, never the
//! URL's path or the body, which hold the phone number and the code.

use std::fmt;
use std::path::Path;

use common::config::sms;
use common::config::webhook_template::{
    BodyFormat, BodyTemplate, UrlTemplate, WebhookValues, WebhookVar,
};
use common::config::{WebhookChannel, WebhookMethod};
use common::secret::SecretString;

use crate::mail::secret_file::{self, SecretFileError};
use crate::mail::tls;

/// How a channel proves who it is.
enum Credentials {
    /// HTTP basic authentication (Twilio: the account SID and auth token).
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: SecretString,
    },
    /// `Authorization: Bearer TOKEN`.
    Bearer(SecretString),
}

/// Why a webhook channel could not be set up from the config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook channel {channel}: {reason}")]
pub struct WebhookSetupError {
    /// The channel's name.
    pub channel: String,
    /// What went wrong.
    pub reason: String,
}

/// A ready webhook channel.
pub struct WebhookSender {
    channel: WebhookChannel,
    client: reqwest::Client,
    credentials: Option<Credentials>,
}

impl fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSender")
            .field("channel", &self.channel.name)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "redacted"),
            )
            .finish_non_exhaustive()
    }
}

/// The values of one code's request.
#[derive(Debug)]
pub struct CodeValues<'a> {
    /// The phone number.
    pub to: &'a str,
    /// The code.
    pub code: &'a SecretString,
    /// The login's user.
    pub user: &'a str,
    /// This machine.
    pub host: &'a str,
    /// Whole minutes the code stays valid.
    pub minutes: String,
}

impl WebhookValues for CodeValues<'_> {
    fn value(&self, var: WebhookVar) -> &str {
        match var {
            WebhookVar::To => self.to,
            WebhookVar::Code => self.code.expose(),
            WebhookVar::User => self.user,
            WebhookVar::Host => self.host,
            WebhookVar::Minutes => &self.minutes,
            // A code's body cannot name it (the config refuses it).
            WebhookVar::Message => "",
        }
    }
}

impl WebhookSender {
    /// Prepares `channel`: reads its credentials and CA files now, at start or reload.
    pub fn new(channel: &WebhookChannel) -> Result<WebhookSender, WebhookSetupError> {
        let fail = |reason: String| WebhookSetupError {
            channel: channel.name.clone(),
            reason,
        };
        let tls = tls::verifying_config(channel.ca_file.as_deref()).map_err(fail)?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(rustls::ClientConfig::clone(&tls))
            .timeout(channel.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| fail(format!("cannot set up the HTTPS client: {e}")))?;
        let credentials = channel
            .credentials_file
            .as_deref()
            .map(read_credentials)
            .transpose()
            .map_err(|e| fail(format!("credentials_file {e}")))?;
        Ok(WebhookSender {
            channel: channel.clone(),
            client,
            credentials,
        })
    }

    /// The channel's name in the config.
    pub fn name(&self) -> &str {
        &self.channel.name
    }

    /// How the prompt names the channel.
    pub fn display_name(&self) -> &str {
        &self.channel.display_name
    }

    /// Sends the code's request to each endpoint in turn until one answers 2xx: `Ok` names
    /// that endpoint (and the failures before it), `Err` every failure, for the audit.
    pub async fn send(&self, values: &CodeValues<'_>) -> Result<String, String> {
        // An SMS text stays within one segment: a long user or host name is cut in the body,
        // never the code (the URLs keep the whole values).
        let fitted;
        let body_values: &dyn WebhookValues = match &self.channel.sms_field {
            Some(field) => {
                fitted = sms::fit(&self.channel.body, field, values);
                &fitted
            }
            None => values,
        };
        // Ours is wiped on drop; the copy each request hands reqwest is not (its body type
        // has no zeroizing variant), and is dropped when the request ends.
        let body = SecretString::new(self.channel.body.render(body_values));
        self.post(&body, self.channel.body.format(), values).await
    }

    /// Whether this channel sends notifications (it has a `notice_body`).
    pub fn sends_notices(&self) -> bool {
        self.channel.notice_body.is_some()
    }

    /// Sends a notification's request like [`WebhookSender::send`], its text cut to one SMS
    /// segment where the channel has an `sms_field`.
    pub async fn send_notice(&self, values: &NoticeText<'_>) -> Result<String, String> {
        let Some(template) = &self.channel.notice_body else {
            return Err(format!(
                "webhook:{} has no notice_body any more",
                self.channel.name
            ));
        };
        let fitted;
        let body_values: &dyn WebhookValues = match &self.channel.sms_field {
            Some(field) => {
                fitted = values.fitted(template, field);
                &fitted
            }
            None => values,
        };
        let body = SecretString::new(template.render(body_values));
        self.post(&body, template.format(), values).await
    }

    /// Posts `body` to each endpoint (its URL from `url_values`) in turn until one answers
    /// 2xx.
    async fn post(
        &self,
        body: &SecretString,
        format: BodyFormat,
        url_values: &dyn WebhookValues,
    ) -> Result<String, String> {
        let values = url_values;
        let content_type = format.content_type();
        let mut failures = Vec::new();
        for (index, endpoint) in self.channel.endpoints.iter().enumerate() {
            let label = endpoint_label(&self.channel.name, index, endpoint);
            let url = endpoint.render(values);
            let mut request = match self.channel.method {
                WebhookMethod::Post => self.client.post(url),
                WebhookMethod::Put => self.client.put(url),
            };
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body.expose().as_bytes().to_vec());
            for (name, value) in &self.channel.headers {
                request = request.header(name.as_str(), value.as_str());
            }
            request = match &self.credentials {
                Some(Credentials::Basic { user, password }) => {
                    request.basic_auth(user, Some(password.expose()))
                }
                Some(Credentials::Bearer(token)) => request.bearer_auth(token.expose()),
                None => request,
            };
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    if failures.is_empty() {
                        return Ok(label);
                    }
                    return Ok(format!("{label} after {}", failures.join("; ")));
                }
                Ok(response) => {
                    failures.push(format!("{label}: HTTP {}", response.status().as_u16()));
                }
                Err(e) => failures.push(format!("{label}: {}", describe(e))),
            }
        }
        Err(failures.join("; "))
    }
}

/// What a notification's request can say: never a code.
#[derive(Debug)]
pub struct NoticeText<'a> {
    /// The phone number.
    pub to: &'a str,
    /// The user it is about.
    pub user: &'a str,
    /// This machine.
    pub host: &'a str,
    /// The notification's text (its subject).
    pub message: String,
}

impl WebhookValues for NoticeText<'_> {
    fn value(&self, var: WebhookVar) -> &str {
        match var {
            WebhookVar::To => self.to,
            WebhookVar::User => self.user,
            WebhookVar::Host => self.host,
            WebhookVar::Message => &self.message,
            // A notice_body cannot name these (the config refuses them).
            WebhookVar::Code | WebhookVar::Minutes => "",
        }
    }
}

impl NoticeText<'_> {
    /// These values with the message cut to the longest prefix with which `field` of
    /// `template` fits one SMS segment.
    fn fitted(&self, template: &BodyTemplate, field: &str) -> NoticeText<'_> {
        let chars: Vec<char> = self.message.chars().collect();
        let cut = |keep: usize| NoticeText {
            to: self.to,
            user: self.user,
            host: self.host,
            message: chars.iter().take(keep).collect(),
        };
        let fits = |text: &NoticeText<'_>| {
            template
                .field_text(field, text)
                .is_none_or(|t: String| sms::SmsLength::of(&t).fits_one_segment())
        };
        cut(sms::longest_fitting(chars.len(), |keep| fits(&cut(keep))))
    }
}

/// How logs, audit rows, `otpctl status` and `otpctl doctor` name the endpoint at `index` of
/// `channel`: `webhook:NAME endpoint N (HOST[:PORT])`, never the path or query.
pub fn endpoint_label(channel: &str, index: usize, endpoint: &UrlTemplate) -> String {
    format!(
        "webhook:{channel} endpoint {} ({})",
        index + 1,
        endpoint.authority()
    )
}

/// A request's error with its causes (the TLS reason is a cause), without the URL.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The first line of a credentials file: `basic USER:PASSWORD` or `bearer TOKEN`.
fn read_credentials(path: &Path) -> Result<Credentials, SecretFileError> {
    let whole = secret_file::read_private(path)?;
    let bad = |reason: &str| SecretFileError {
        path: path.display().to_string(),
        reason: reason.to_string(),
    };
    let line = whole
        .expose()
        .split(['\n', '\r'])
        .next()
        .unwrap_or_default();
    let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
    match kind {
        "basic" => {
            let Some((user, password)) = rest.split_once(':') else {
                return Err(bad("the first line must be basic USER:PASSWORD"));
            };
            if user.is_empty() || password.is_empty() {
                return Err(bad(
                    "basic needs a user and a password: basic USER:PASSWORD",
                ));
            }
            Ok(Credentials::Basic {
                user: user.to_string(),
                password: SecretString::new(password.to_string()),
            })
        }
        "bearer" if !rest.is_empty() && !rest.contains(char::is_whitespace) => {
            Ok(Credentials::Bearer(SecretString::new(rest.to_string())))
        }
        _ => Err(bad(
            "the first line must be basic USER:PASSWORD or bearer TOKEN",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(content: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cred");
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        (dir, path)
    }

    #[test]
    fn credentials_are_basic_or_bearer_on_the_first_line() {
        let (_d, path) = file("basic AC123:s3cr:et\nignored\n");
        let Credentials::Basic { user, password } = read_credentials(&path).unwrap() else {
            panic!("not basic");
        };
        assert_eq!((user.as_str(), password.expose()), ("AC123", "s3cr:et"));
        let (_d, path) = file("bearer tk_1\n");
        assert!(matches!(
            read_credentials(&path).unwrap(),
            Credentials::Bearer(t) if t.expose() == "tk_1"
        ));
        for bad in [
            "basic AC123\n",
            "bearer \n",
            "token x\n",
            "\n",
            "basic :pw\n",
        ] {
            let (_d, path) = file(bad);
            assert!(read_credentials(&path).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_readable_credentials_file_is_refused() {
        let (_d, path) = file("bearer tk\n");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_credentials(&path).is_err());
    }
}
