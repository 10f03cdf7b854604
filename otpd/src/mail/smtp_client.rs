//! The SMTP protocol itself (RFC 5321) over one connection: replies, EHLO, STARTTLS (RFC 3207),
//! AUTH PLAIN and LOGIN (RFC 4954) and a mail transaction, pipelined (RFC 2920) when the
//! server offers PIPELINING.
//!
//! otpd speaks SMTP itself rather than through lettre's client because a login waits for the
//! mail: lettre sends MAIL, RCPT, DATA, the message and its final dot as five writes with a
//! wait after each command, and opens implicit-TLS sockets itself with Nagle's algorithm on.
//! Here a transaction is two writes and two waits (MAIL+RCPT+DATA, then message+dot), every
//! socket has TCP_NODELAY, and the AUTH secret is wiped after use. lettre still builds and
//! signs the messages. Where a step fails is kept, because failover depends on it (see
//! `smtp.rs`).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::secret::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use zeroize::Zeroizing;

use super::smtp_text::{Features, Reply, dot_stuffed, parse_reply_line, secret_line};

/// The longest reply line accepted; RFC 5321 allows 512 octets, servers send a little more.
const MAX_REPLY_LINE: usize = 4096;
/// The most lines in one multi-line reply (an EHLO lists a few dozen at most).
const MAX_REPLY_LINES: usize = 100;

/// Why an exchange with the server failed.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// The server answered, but not with what the step needs.
    #[error("{}", .0.one_line())]
    Refused(Reply),
    /// The connection failed or closed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server's bytes are not an SMTP reply.
    #[error("malformed reply: {0}")]
    Malformed(String),
    /// The TLS handshake failed (certificate, protocol).
    #[error("{0}")]
    Tls(String),
}

impl SmtpError {
    /// The reply behind a refusal, if the server gave one.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            SmtpError::Refused(reply) => Some(reply),
            _ => None,
        }
    }
}

/// The byte stream under a session: plain TCP, or TLS over it.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP (security "none", or STARTTLS before the upgrade).
    Plain(TcpStream),
    /// TLS: implicit, or after STARTTLS.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
        }
    }

    /// TLS close_notify (for TLS) and the TCP half-close.
    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(s) => s.shutdown().await,
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes).await,
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }

    /// Wraps `tcp` in TLS for `server_name`, verifying the certificate with `connector`'s
    /// roots.
    pub async fn tls(
        tcp: TcpStream,
        connector: &TlsConnector,
        server_name: rustls::pki_types::ServerName<'static>,
    ) -> Result<Stream, SmtpError> {
        connector
            .connect(server_name, tcp)
            .await
            .map(|tls| Stream::Tls(Box::new(tls)))
            .map_err(|e| {
                match e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                {
                    Some(tls) => SmtpError::Tls(tls.to_string()),
                    None => SmtpError::Io(e),
                }
            })
    }
}

/// One SMTP session.
#[derive(Debug)]
pub struct Session {
    stream: Stream,
    /// Bytes read and not yet parsed (pipelined replies arrive together).
    pending: Vec<u8>,
    /// What the last EHLO offered.
    pub features: Features,
    /// Set when an exchange failed half-way: the session's state is unknown, so it is not
    /// reused.
    pub broken: bool,
}

impl Session {
    /// A session on `stream` before anything was read from it.
    fn on(stream: Stream) -> Session {
        Session {
            stream,
            pending: Vec::new(),
            features: Features::default(),
            broken: false,
        }
    }

    /// Reads the greeting on `stream` and says EHLO as `hello`.
    pub async fn start(stream: Stream, hello: &str) -> Result<Session, SmtpError> {
        let mut session = Session::on(stream);
        session.expect(220).await?;
        session.ehlo(hello).await?;
        Ok(session)
    }

    async fn ehlo(&mut self, hello: &str) -> Result<(), SmtpError> {
        let reply = self.command(&format!("EHLO {hello}\r\n")).await?;
        self.features = Features::from_ehlo(&reply);
        Ok(())
    }

    /// Upgrades a plain session with STARTTLS and says EHLO again, as RFC 3207 requires (the
    /// features offered in clear are forgotten).
    pub async fn starttls(
        mut self,
        connector: &TlsConnector,
        server_name: rustls::pki_types::ServerName<'static>,
        hello: &str,
    ) -> Result<Session, SmtpError> {
        self.expect_after("STARTTLS\r\n", 220).await?;
        if !self.pending.is_empty() {
            // Bytes after the 220 were sent in clear and could be an attacker's injection.
            return Err(SmtpError::Malformed(
                "the server sent data after agreeing to STARTTLS".into(),
            ));
        }
        let Stream::Plain(tcp) = self.stream else {
            return Err(SmtpError::Malformed("STARTTLS inside TLS".into()));
        };
        let mut session = Session::on(Stream::tls(tcp, connector, server_name).await?);
        session.ehlo(hello).await?;
        Ok(session)
    }

    /// True once the session runs over TLS.
    pub fn is_encrypted(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Logs in with PLAIN, else LOGIN; the caller checked that one is offered.
    pub async fn auth(&mut self, user: &str, password: &SecretString) -> Result<(), SmtpError> {
        if self.features.auth_plain {
            let mut token = Zeroizing::new(Vec::with_capacity(user.len() + password.len() + 2));
            token.push(0);
            token.extend_from_slice(user.as_bytes());
            token.push(0);
            token.extend_from_slice(password.expose().as_bytes());
            let line = secret_line("AUTH PLAIN ", &token);
            self.expect_after(&line, 235).await.map(|_| ())
        } else {
            self.expect_after("AUTH LOGIN\r\n", 334).await?;
            self.expect_after(&format!("{}\r\n", BASE64.encode(user)), 334)
                .await?;
            let line = secret_line("", password.expose().as_bytes());
            self.expect_after(&line, 235).await.map(|_| ())
        }
    }

    /// MAIL FROM, RCPT TO for each recipient and DATA: in one write when the server offers
    /// PIPELINING, otherwise one at a time. Returns the failing step's index (0 = MAIL,
    /// 1..=n = RCPT, n+1 = DATA) with the error. `first_within` bounds the wait for the first
    /// reply (an `Io` error of kind `TimedOut` when it passes).
    pub async fn envelope(
        &mut self,
        from: &str,
        to: &[String],
        first_within: Option<Duration>,
    ) -> Result<(), (usize, SmtpError)> {
        let mut commands = Vec::with_capacity(to.len() + 2);
        commands.push(format!("MAIL FROM:<{from}>\r\n"));
        commands.extend(to.iter().map(|rcpt| format!("RCPT TO:<{rcpt}>\r\n")));
        commands.push("DATA\r\n".to_string());
        let expected = |index: usize| {
            if index == commands.len() - 1 {
                354
            } else {
                250
            }
        };
        if !self.features.pipelining {
            for (index, command) in commands.iter().enumerate() {
                self.write(command.as_bytes())
                    .await
                    .map_err(|e| (index, e))?;
                let within = if index == 0 { first_within } else { None };
                if let Err(e) = self.expect_within(expected(index), within).await {
                    if matches!(e, SmtpError::Refused(_)) {
                        self.reset_after_refusal(&e).await;
                    }
                    return Err((index, e));
                }
            }
            return Ok(());
        }
        self.write(commands.concat().as_bytes())
            .await
            .map_err(|e| (0, e))?;
        // Every reply is read, so the session stays in step; the first failure is reported.
        let mut first_failure = None;
        let mut data_accepted = false;
        for index in 0..commands.len() {
            let within = if index == 0 { first_within } else { None };
            let result = self.expect_within(expected(index), within).await;
            match result {
                Ok(_) => data_accepted = index == commands.len() - 1,
                // A server that refuses and then hangs up (Exim's 550 at RCPT, a 421 at MAIL)
                // meant its refusal: that reply counts, not the close that followed it.
                Err(e @ (SmtpError::Io(_) | SmtpError::Malformed(_) | SmtpError::Tls(_))) => {
                    self.broken = true;
                    return Err(first_failure.unwrap_or((index, e)));
                }
                Err(e) => {
                    first_failure.get_or_insert((index, e));
                }
            }
        }
        let Some(failure) = first_failure else {
            return Ok(());
        };
        if data_accepted {
            // A 354 after a refused MAIL or RCPT leaves the server waiting for a message that
            // must not be sent: the session is given up.
            self.broken = true;
        } else {
            self.reset_after_refusal(&failure.1).await;
        }
        Err(failure)
    }

    /// After a refused command the session is still in step: RSET clears the transaction
    /// (RFC 5321 4.1.1.5) so the connection can carry the next message, rather than being
    /// dropped half-way, which servers log as a lost connection. A 421 means the server is
    /// closing the connection itself: nothing more is said on it.
    async fn reset_after_refusal(&mut self, refusal: &SmtpError) {
        if refusal.reply().is_some_and(|r| r.code == 421) {
            self.broken = true;
            return;
        }
        if self.expect_after("RSET\r\n", 250).await.is_err() {
            self.broken = true;
        }
    }

    /// The message, dot-stuffed, and the final dot, in one write, and the server's verdict.
    pub async fn message(&mut self, message: &[u8]) -> Result<(), SmtpError> {
        let mut bytes = dot_stuffed(message);
        if !bytes.ends_with(b"\r\n") {
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b".\r\n");
        self.write(&bytes).await?;
        let verdict = self.expect(250).await.map(|_| ());
        if let Err(e) = &verdict {
            // The final reply ends the transaction either way (RFC 5321 4.1.1.4); only a 421
            // also ends the session.
            if e.reply().is_some_and(|r| r.code == 421) {
                self.broken = true;
            }
        }
        verdict
    }

    /// Ends the session properly: QUIT (unless the session broke half-way, where QUIT could be
    /// taken for message text), then TLS close_notify and the TCP close, so the server logs a
    /// clean end rather than a lost connection. Errors do not matter any more.
    pub async fn close(mut self) {
        if !self.broken {
            let _ = self.expect_after("QUIT\r\n", 221).await;
        }
        let _ = self.stream.shutdown().await;
    }

    /// Sends `command` and reads its reply, which must be positive.
    async fn command(&mut self, command: &str) -> Result<Reply, SmtpError> {
        self.write(command.as_bytes()).await?;
        let reply = self.read_reply().await?;
        if reply.is_positive() {
            Ok(reply)
        } else {
            Err(SmtpError::Refused(reply))
        }
    }

    async fn expect_after(&mut self, command: &str, code: u16) -> Result<Reply, SmtpError> {
        self.write(command.as_bytes()).await?;
        self.expect(code).await
    }

    /// [`Self::expect`], given up after `within` if set.
    async fn expect_within(
        &mut self,
        code: u16,
        within: Option<Duration>,
    ) -> Result<Reply, SmtpError> {
        match within {
            None => self.expect(code).await,
            Some(limit) => match tokio::time::timeout(limit, self.expect(code)).await {
                Ok(result) => result,
                Err(_) => {
                    self.broken = true;
                    Err(SmtpError::Io(std::io::ErrorKind::TimedOut.into()))
                }
            },
        }
    }

    /// Reads a reply that must carry `code`.
    async fn expect(&mut self, code: u16) -> Result<Reply, SmtpError> {
        let reply = self.read_reply().await?;
        if reply.code == code {
            Ok(reply)
        } else {
            Err(SmtpError::Refused(reply))
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SmtpError> {
        self.stream.write_all(bytes).await.map_err(|e| {
            self.broken = true;
            SmtpError::Io(e)
        })
    }

    async fn read_reply(&mut self) -> Result<Reply, SmtpError> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            let (code, last, text) = parse_reply_line(&line)
                .ok_or_else(|| SmtpError::Malformed(common::text::escape_for_log(&line)))?;
            if lines.len() >= MAX_REPLY_LINES {
                self.broken = true;
                return Err(SmtpError::Malformed("a reply of too many lines".into()));
            }
            lines.push((code, text));
            if last {
                break;
            }
        }
        let code = lines[0].0;
        if lines.iter().any(|(c, _)| *c != code) {
            self.broken = true;
            return Err(SmtpError::Malformed(
                "the lines of one reply carry different codes".into(),
            ));
        }
        Ok(Reply {
            code,
            lines: lines.into_iter().map(|(_, text)| text).collect(),
        })
    }

    /// One line, without its CRLF.
    async fn read_line(&mut self) -> Result<String, SmtpError> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line);
                return Ok(text.trim_end_matches(['\r', '\n']).to_string());
            }
            if self.pending.len() > MAX_REPLY_LINE {
                self.broken = true;
                return Err(SmtpError::Malformed("a reply line is too long".into()));
            }
            let mut chunk = [0u8; 4096];
            let read = self.stream.read(&mut chunk).await.map_err(|e| {
                self.broken = true;
                SmtpError::Io(e)
            })?;
            if read == 0 {
                self.broken = true;
                return Err(SmtpError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.pending.extend_from_slice(&chunk[..read]);
        }
    }
}
