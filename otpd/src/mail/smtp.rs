//! One SMTP server: opening a connection (TCP, TLS or STARTTLS, AUTH), one mail transaction,
//! and its connections held in a [`Pool`] within the server's limits.
//!
//! Failover needs to know *where* a send failed: a refused AUTH or a 4xx moves on to the next
//! server, a 5xx for the recipient stops, and silence after the message was handed over stops
//! too, since it may have been delivered and a second server would make it arrive twice. Every
//! error names its step and quotes the server's reply. The protocol itself is in
//! `smtp_client.rs`.

use std::time::Duration;

use common::config::{Security, SmtpServer};
use common::secret::SecretString;
use common::text::escape_for_log;

use super::message::Outgoing;
use super::pool::{Connection, Lease, Leased, Limits, Pool};
use super::smtp_client::{Session, SmtpError, Stream};
use super::tls::TlsClient;

/// How long an idle connection is kept for the next message before the pool's timer closes
/// it. Short, because each held connection takes one of the server's process slots, and a
/// login burst is over in seconds; servers themselves wait minutes before dropping a client.
pub(super) const IDLE_TIME: Duration = Duration::from_secs(10);

/// How long a reused connection may take to answer MAIL FROM before a fresh one is opened.
const REUSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a polite QUIT may take.
const QUIT_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest server reply quoted in an error; replies come from the network.
const MAX_REPLY_CHARS: usize = 300;

/// The step of a delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Waiting for one of the server's `max_connections` to be free.
    Wait,
    /// TCP connect, implicit TLS, greeting and EHLO.
    Connect,
    /// The TLS handshake (implicit TLS) or the STARTTLS upgrade.
    Tls,
    /// AUTH.
    Auth,
    /// MAIL FROM.
    Sender,
    /// RCPT TO.
    Recipient,
    /// DATA.
    Data,
    /// The message itself and the server's verdict on it.
    Message,
}

impl Step {
    fn describe(self) -> &'static str {
        match self {
            Step::Wait => "waiting for a free connection",
            Step::Connect => "connecting",
            Step::Tls => "setting up TLS",
            Step::Auth => "AUTH",
            Step::Sender => "MAIL FROM",
            Step::Recipient => "RCPT TO",
            Step::Data => "DATA",
            Step::Message => "sending the message",
        }
    }
}

/// What kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server answered with a 4xx (transient) reply.
    Transient,
    /// The server answered with a 5xx (permanent) reply.
    Permanent,
    /// The connection failed or broke.
    Network,
    /// TLS failed: handshake, certificate or the STARTTLS upgrade.
    Tls,
    /// The server does not offer what the config requires (STARTTLS, an AUTH mechanism).
    Missing,
    /// No answer in time.
    Timeout,
    /// Every one of the server's connections stayed busy until the deadline: otpd's own limit,
    /// not the server's fault.
    Busy,
}

/// Why one attempt at one server failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptError {
    /// Where it failed.
    pub step: Step,
    /// How.
    pub failure: Failure,
    /// What happened, with the server's reply, one line.
    pub text: String,
}

impl std::fmt::Display for AttemptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl AttemptError {
    /// True when no other server may be tried: the recipient or the message was refused for
    /// good (another server will not make a wrong address right), or the server fell silent
    /// after it had the whole message (it may have been delivered; at most one per code).
    pub fn ends_failover(&self) -> bool {
        match self.step {
            Step::Recipient | Step::Data => self.failure == Failure::Permanent,
            Step::Message => self.failure != Failure::Transient,
            _ => false,
        }
    }

    /// True when the failure says the server is unreachable or broken (counted by the
    /// breaker). "Try later" (any 4xx: a full server, a rate limit, a greeting of 421) is
    /// backpressure, and a busy pool is otpd's own limit: a burst of logins must never shut a
    /// working server out. A refused recipient or message says nothing bad about the server.
    pub fn blames_server(&self) -> bool {
        match self.failure {
            Failure::Transient | Failure::Busy => false,
            Failure::Permanent => {
                !matches!(self.step, Step::Recipient | Step::Data | Step::Message)
            }
            Failure::Network | Failure::Tls | Failure::Missing | Failure::Timeout => true,
        }
    }

    /// True when the same server may take the message a little later: it pushed back (4xx or
    /// a busy pool) before it had the message.
    pub fn is_backpressure(&self) -> bool {
        matches!(self.failure, Failure::Transient | Failure::Busy)
    }

    fn timeout(step: Step, budget: Duration) -> AttemptError {
        if step == Step::Wait {
            return AttemptError {
                step,
                failure: Failure::Busy,
                text: format!(
                    "every connection to the server stayed busy for {}",
                    format_secs(budget)
                ),
            };
        }
        let text = if step == Step::Message {
            format!(
                "no answer within {} after the message was sent; it may have been delivered, so no other server is tried",
                format_secs(budget)
            )
        } else {
            format!(
                "no answer within {} while {}",
                format_secs(budget),
                step.describe()
            )
        };
        AttemptError {
            step,
            failure: Failure::Timeout,
            text,
        }
    }

    fn missing(step: Step, text: String) -> AttemptError {
        AttemptError {
            step,
            failure: Failure::Missing,
            text,
        }
    }

    /// Classifies an SMTP error at `step`; `what` says what was being done.
    fn from_smtp(step: Step, what: &str, e: &SmtpError) -> AttemptError {
        let failure = match e {
            SmtpError::Tls(_) => Failure::Tls,
            SmtpError::Refused(reply) if reply.code >= 500 => Failure::Permanent,
            SmtpError::Refused(reply) if reply.is_transient() => Failure::Transient,
            SmtpError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => Failure::Timeout,
            // An unexpected positive code, a broken connection, bytes that are no reply.
            SmtpError::Refused(_) | SmtpError::Io(_) | SmtpError::Malformed(_) => Failure::Network,
        };
        let step = if failure == Failure::Tls && step == Step::Connect {
            // Implicit TLS: the handshake is part of connecting, but it is a TLS failure.
            Step::Tls
        } else {
            step
        };
        let text = match (failure, step) {
            (Failure::Tls, _) => format!("TLS failed: {}", reply_text(e)),
            (Failure::Network | Failure::Timeout, Step::Message) => format!(
                "the connection broke after the message was sent ({}); it may have been delivered, so no other server is tried",
                reply_text(e)
            ),
            _ => format!("{what}: {}", reply_text(e)),
        };
        AttemptError {
            step,
            failure,
            text,
        }
    }
}

/// A duration as people read it in an error: `1.5s`.
pub fn format_secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The reply code and text (or the network error) of `e`, escaped and capped.
fn reply_text(e: &SmtpError) -> String {
    escape_for_log(e.to_string().trim())
        .chars()
        .take(MAX_REPLY_CHARS)
        .collect()
}

impl Connection for Session {
    fn reusable(&self) -> bool {
        !self.broken
    }

    fn close(self) -> impl std::future::Future<Output = ()> + Send {
        Session::close(self)
    }
}

/// One configured SMTP server, ready to connect.
pub struct SmtpTarget {
    /// The server's name in logs and audit rows.
    pub name: String,
    host: String,
    port: u16,
    security: Security,
    /// One attempt's limit.
    pub timeout: Duration,
    tls: Option<TlsClient>,
    auth: Option<(String, SecretString)>,
    /// The EHLO argument: a fully-qualified domain or an address literal such as
    /// `[192.0.2.1]`; `None` sends the literal of each connection's own local address.
    hello: Option<String>,
    pool: Pool<Session>,
}

impl std::fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTarget")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("auth", &self.auth.as_ref().map(|(user, _)| user))
            .finish_non_exhaustive()
    }
}

impl SmtpTarget {
    /// A target for `server`. `tls` is required for `tls` and `starttls` security; `password`
    /// goes with `server.auth`; `hello` is this machine's fully-qualified name, used when the
    /// server sets no `hello_name` (without either, EHLO carries an address literal).
    pub fn new(
        server: &SmtpServer,
        tls: Option<TlsClient>,
        password: Option<SecretString>,
        hello: Option<&str>,
    ) -> SmtpTarget {
        let hello = match &server.hello_name {
            Some(name) => match name.parse::<std::net::IpAddr>() {
                Ok(ip) => Some(address_literal(ip)),
                Err(_) => Some(name.clone()),
            },
            None => hello.map(str::to_string),
        };
        SmtpTarget {
            name: server.name.clone(),
            host: server.host.clone(),
            port: server.port,
            security: server.security,
            timeout: server.timeout,
            tls,
            auth: server
                .auth
                .as_ref()
                .zip(password)
                .map(|(auth, password)| (auth.username.clone(), password)),
            hello,
            pool: Pool::new(Limits {
                max_open: usize::try_from(server.max_connections).unwrap_or(usize::MAX),
                max_messages: server.max_messages_per_connection,
                idle_time: IDLE_TIME,
            }),
        }
    }

    /// Opens a connection as a delivery would (TCP, TLS or STARTTLS, EHLO, AUTH when a
    /// password was given) within `budget`, then says QUIT: what `otpctl doctor` checks.
    pub async fn check_connection(&self, budget: Duration) -> Result<(), AttemptError> {
        let mut step = Step::Connect;
        let opened = tokio::time::timeout(budget, self.open(&mut step)).await;
        match opened {
            Ok(Ok(conn)) => {
                let _ = tokio::time::timeout(QUIT_TIMEOUT, conn.close()).await;
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(AttemptError::timeout(step, budget)),
        }
    }

    /// Delivers `out` within `budget`: over an idle connection when `pooled` and one is
    /// alive, else over a new one, waiting for a free connection while all
    /// `max_connections` are busy. A test mail passes `pooled = false` so that connect, TLS
    /// and AUTH are really exercised.
    pub async fn deliver(
        &self,
        out: &Outgoing,
        budget: Duration,
        pooled: bool,
    ) -> Result<(), AttemptError> {
        let mut step = Step::Wait;
        match tokio::time::timeout(budget, self.deliver_steps(out, pooled, &mut step)).await {
            Ok(result) => result,
            Err(_) => Err(AttemptError::timeout(step, budget)),
        }
    }

    async fn deliver_steps(
        &self,
        out: &Outgoing,
        pooled: bool,
        step: &mut Step,
    ) -> Result<(), AttemptError> {
        loop {
            *step = Step::Wait;
            let slot = match self.pool.lease(pooled).await {
                Lease::Fresh(slot) => slot,
                Lease::Reused(mut reused) => {
                    let result =
                        transaction(&mut reused.conn, out, step, Some(REUSE_TIMEOUT)).await;
                    // A 421 at MAIL on a kept connection is the server closing it (its idle
                    // timeout), not a refusal of this message.
                    let dead = matches!(&result, Err(e) if e.step == Step::Sender
                        && (!e.is_backpressure() || !reused.conn.reusable()));
                    if result.is_ok() {
                        reused.sent += 1;
                    }
                    self.pool.give_back(reused, !dead);
                    if dead {
                        // The server dropped or broke the idle connection before it took
                        // anything: nothing was sent, so the message tries the next one.
                        tracing::debug!("a pooled connection failed at MAIL FROM; reconnecting");
                        continue;
                    }
                    return result;
                }
            };
            let conn = self.open(step).await?;
            let mut fresh = Leased::new(conn, slot);
            let result = transaction(&mut fresh.conn, out, step, None).await;
            if result.is_ok() {
                fresh.sent += 1;
            }
            self.pool.give_back(fresh, pooled);
            return result;
        }
    }

    /// Connects, upgrades, logs in.
    async fn open(&self, step: &mut Step) -> Result<Session, AttemptError> {
        *step = Step::Connect;
        let connect_failed = |e: &SmtpError| {
            AttemptError::from_smtp(
                Step::Connect,
                &format!("cannot connect to {}:{}", self.host, self.port),
                e,
            )
        };
        let tcp = self.connect_tcp().await?;
        let hello = match (&self.hello, tcp.local_addr()) {
            (Some(name), _) => name.clone(),
            (None, Ok(local)) => address_literal(local.ip()),
            (None, Err(e)) => return Err(connect_failed(&SmtpError::Io(e))),
        };
        let stream = match self.security {
            Security::Tls => {
                let tls = self.tls_client()?;
                Stream::tls(tcp, &tls.connector, tls.server_name.clone())
                    .await
                    .map_err(|e| connect_failed(&e))?
            }
            Security::Starttls | Security::None => Stream::Plain(tcp),
        };
        let mut conn = Session::start(stream, &hello)
            .await
            .map_err(|e| connect_failed(&e))?;
        if self.security == Security::Starttls {
            *step = Step::Tls;
            if !conn.features.starttls {
                conn.close().await;
                return Err(AttemptError::missing(
                    Step::Tls,
                    "the server does not offer STARTTLS, which security = \"starttls\" requires; nothing was sent in clear".into(),
                ));
            }
            let tls = self.tls_client()?;
            conn = conn
                .starttls(&tls.connector, tls.server_name.clone(), &hello)
                .await
                .map_err(|e| AttemptError::from_smtp(Step::Tls, "STARTTLS refused", &e))?;
            if !conn.is_encrypted() {
                return Err(AttemptError::missing(
                    Step::Tls,
                    "the connection is not encrypted after STARTTLS".into(),
                ));
            }
        }
        if let Some((user, password)) = &self.auth {
            *step = Step::Auth;
            if !(conn.features.auth_plain || conn.features.auth_login) {
                conn.close().await;
                return Err(AttemptError::missing(
                    Step::Auth,
                    "the server offers no AUTH PLAIN or LOGIN (many offer AUTH only over TLS)"
                        .into(),
                ));
            }
            if let Err(e) = conn.auth(user, password).await {
                let refused = AttemptError::from_smtp(
                    Step::Auth,
                    &format!("AUTH as {:?} refused", escape_for_log(user)),
                    &e,
                );
                conn.close().await;
                return Err(refused);
            }
        }
        Ok(conn)
    }

    /// A TCP connection to the server with Nagle's algorithm off, for every security mode. A
    /// small write that follows another (a command after a message) would otherwise wait for
    /// the server's delayed ACK, 40 ms on Linux; with lettre's client that was the whole
    /// login's latency in bench/.
    async fn connect_tcp(&self) -> Result<tokio::net::TcpStream, AttemptError> {
        let failed = |failure: Failure, detail: String| AttemptError {
            step: Step::Connect,
            failure,
            text: format!(
                "cannot connect to {}:{}: {}",
                self.host,
                self.port,
                escape_for_log(&detail)
            ),
        };
        let addresses = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| failed(Failure::Network, e.to_string()))?;
        let mut last = failed(Failure::Network, "the name has no address".into());
        for address in addresses {
            let connect = tokio::net::TcpStream::connect(address);
            match tokio::time::timeout(self.timeout, connect).await {
                Ok(Ok(stream)) => {
                    stream
                        .set_nodelay(true)
                        .map_err(|e| failed(Failure::Network, e.to_string()))?;
                    return Ok(stream);
                }
                Ok(Err(e)) => last = failed(Failure::Network, e.to_string()),
                Err(_) => last = failed(Failure::Timeout, "connection timed out".into()),
            }
        }
        Err(last)
    }

    fn tls_client(&self) -> Result<&TlsClient, AttemptError> {
        self.tls.as_ref().ok_or_else(|| {
            AttemptError::missing(Step::Tls, "no TLS parameters were prepared".into())
        })
    }

    /// Closes the idle connections properly (at shutdown).
    pub async fn close_idle(&self) {
        self.pool.close_idle().await;
    }

    /// Idle connections now held (for tests and status).
    pub fn idle_connections(&self) -> usize {
        self.pool.idle()
    }

    /// Connections now open, busy and idle (for tests and status).
    pub fn open_connections(&self) -> usize {
        self.pool.open()
    }
}

/// An IP address as EHLO takes it (RFC 5321 4.1.3): `[192.0.2.1]`, `[IPv6:2001:db8::1]`.
pub fn address_literal(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(ip) => format!("[{ip}]"),
        std::net::IpAddr::V6(ip) => format!("[IPv6:{ip}]"),
    }
}

/// MAIL FROM, RCPT TO, DATA (pipelined when offered) and the message, each step recorded in
/// `step`. The bytes come from a checked [`lettre::Message`]; the session dot-stuffs them.
/// `sender_within` bounds the wait for the first reply on a reused connection, which may have
/// died while idle.
async fn transaction(
    conn: &mut Session,
    out: &Outgoing,
    step: &mut Step,
    sender_within: Option<Duration>,
) -> Result<(), AttemptError> {
    *step = Step::Sender;
    let from = out
        .envelope
        .from()
        .map(ToString::to_string)
        .unwrap_or_default();
    let to: Vec<String> = out.envelope.to().iter().map(ToString::to_string).collect();
    let envelope = conn.envelope(&from, &to, sender_within).await;
    if let Err((index, e)) = envelope {
        let (step_at, what) = match index {
            0 => (Step::Sender, "sender refused"),
            i if i <= to.len() => (Step::Recipient, "recipient refused"),
            _ => (Step::Data, "DATA refused"),
        };
        *step = step_at;
        return Err(match e {
            SmtpError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                AttemptError::timeout(step_at, sender_within.unwrap_or_default())
            }
            e => AttemptError::from_smtp(step_at, what, &e),
        });
    }
    *step = Step::Message;
    conn.message(&out.bytes)
        .await
        .map_err(|e| AttemptError::from_smtp(Step::Message, "message refused", &e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(step: Step, failure: Failure) -> AttemptError {
        AttemptError {
            step,
            failure,
            text: String::new(),
        }
    }

    #[test]
    fn only_a_refused_recipient_or_message_or_silence_after_the_message_stops_failover() {
        use Failure::{Missing, Network, Permanent, Timeout, Transient};
        let all = [
            Transient,
            Permanent,
            Network,
            Failure::Tls,
            Missing,
            Timeout,
        ];
        for step in [Step::Connect, Step::Tls, Step::Auth, Step::Sender] {
            for failure in all {
                assert!(
                    !error(step, failure).ends_failover(),
                    "{step:?} {failure:?}"
                );
            }
        }
        assert!(error(Step::Recipient, Permanent).ends_failover());
        assert!(!error(Step::Recipient, Transient).ends_failover());
        assert!(!error(Step::Recipient, Network).ends_failover());
        assert!(error(Step::Data, Permanent).ends_failover());
        assert!(!error(Step::Data, Transient).ends_failover());
        assert!(error(Step::Message, Permanent).ends_failover());
        assert!(!error(Step::Message, Transient).ends_failover());
        assert!(error(Step::Message, Network).ends_failover());
        assert!(error(Step::Message, Timeout).ends_failover());
    }

    #[test]
    fn only_an_unreachable_or_broken_server_is_blamed_not_a_refusal_or_try_later() {
        assert!(!error(Step::Recipient, Failure::Permanent).blames_server());
        for step in [Step::Connect, Step::Sender, Step::Recipient, Step::Message] {
            assert!(!error(step, Failure::Transient).blames_server(), "{step:?}");
        }
        assert!(!error(Step::Wait, Failure::Busy).blames_server());
        assert!(error(Step::Connect, Failure::Network).blames_server());
        assert!(error(Step::Tls, Failure::Tls).blames_server());
        assert!(error(Step::Auth, Failure::Permanent).blames_server());
        assert!(error(Step::Message, Failure::Timeout).blames_server());
    }

    /// Regression: with Nagle on, every pooled mail waited 40 ms for the server's delayed ACK
    /// before the closing `.` line went out (implicit TLS too, while lettre opened that socket).
    #[tokio::test]
    async fn connections_have_nagle_off_in_every_security_mode() {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        for security in [Security::None, Security::Starttls, Security::Tls] {
            let server = SmtpServer {
                name: "local".into(),
                host: "127.0.0.1".into(),
                port,
                security,
                auth: None,
                ca_file: None,
                hello_name: None,
                timeout: Duration::from_secs(5),
                max_connections: common::config::DEFAULT_MAX_CONNECTIONS,
                max_messages_per_connection: common::config::DEFAULT_MAX_MESSAGES_PER_CONNECTION,
            };
            let target = SmtpTarget::new(&server, None, None, Some("h.example"));
            let stream = target.connect_tcp().await.unwrap();
            assert!(stream.nodelay().unwrap(), "{security:?}");
        }
    }

    #[tokio::test]
    async fn a_refused_tcp_connection_is_a_network_failure_at_connect() {
        // Bind then drop: nothing listens on the port any more.
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = SmtpServer {
            name: "gone".into(),
            host: "127.0.0.1".into(),
            port,
            security: Security::None,
            auth: None,
            ca_file: None,
            hello_name: None,
            timeout: Duration::from_secs(5),
            max_connections: common::config::DEFAULT_MAX_CONNECTIONS,
            max_messages_per_connection: common::config::DEFAULT_MAX_MESSAGES_PER_CONNECTION,
        };
        let target = SmtpTarget::new(&server, None, None, Some("h.example"));
        let e = target.connect_tcp().await.unwrap_err();
        assert_eq!((e.step, e.failure), (Step::Connect, Failure::Network));
        assert!(
            e.text
                .starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")),
            "{e}"
        );
    }

    #[test]
    fn a_timeout_after_the_message_says_it_may_have_been_delivered() {
        let e = AttemptError::timeout(Step::Message, Duration::from_secs(3));
        assert!(e.text.contains("may have been delivered"), "{e}");
        let e = AttemptError::timeout(Step::Auth, Duration::from_millis(1500));
        assert_eq!(e.text, "no answer within 1.5s while AUTH");
    }
}
