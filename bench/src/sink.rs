//! A minimal SMTP server that takes the code out of every message it accepts and leaves it in
//! the [`Mailbox`] for the login waiting on that recipient: on loopback in plain text for the
//! run's own otpd, and on a bridge's address with STARTTLS for otpd hosts in network namespaces
//! ([`crate::pg_store`]).
//!
//! It is written by hand, not an MTA or the end-to-end tests' Python capture server, because it
//! must not be what is measured: it speaks what a submission client needs (EHLO/HELO, MAIL,
//! RCPT, DATA, RSET, NOOP, QUIT) with one thread per connection. It is pipelining-safe: commands
//! are read from one buffered reader, answered in order, and answers are flushed only when no
//! further command is already buffered, so a client that sends MAIL, RCPT and DATA at once gets
//! all three answers, in order, at once. The message is parsed before DATA is acknowledged, so
//! by the time otpd hears "250" (and answers the module with its prompt) the code is already
//! waiting in the mailbox.
//!
//! STARTTLS (RFC 3207) is what otpd requires of any mail server off loopback: the sink started
//! with [`SmtpSink::start_tls`] offers it in its EHLO reply and, on the command, turns the
//! connection into a TLS session (rustls, with a certificate from the run's [`TestCa`] naming
//! the address it listens on, which otpd verifies against `ca_file`), after which the same
//! conversation goes on inside TLS; a command pipelined behind STARTTLS, which would have been
//! sent in clear, ends the session. otpd keeps its SMTP connections open for reuse, so the
//! handshake is paid once per connection, not per login. The loopback sink offers no STARTTLS
//! and serves plain text as before.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use e2e_tests::tls::TestCa;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::error::BenchError;
use crate::mailbox::Mailbox;
use crate::mime;

/// The longest command line accepted (RFC 5321 says 512 with the CRLF; some slack).
const MAX_LINE: u64 = 4096;
/// The largest message kept; a code mail is about 1 KiB.
const MAX_MESSAGE: usize = 1 << 20;
/// The read buffer of a session: room for a whole pipelined transaction.
const READ_BUFFER: usize = 64 * 1024;

/// A running sink; stops accepting when dropped (open sessions end when their client hangs up).
#[derive(Debug)]
pub struct SmtpSink {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl SmtpSink {
    /// Listens on a free port of 127.0.0.1, plain text only, and delivers into `mailbox`.
    pub fn start(mailbox: Arc<Mailbox>) -> io::Result<SmtpSink> {
        SmtpSink::listen(Ipv4Addr::LOCALHOST, mailbox, None)
    }

    /// Listens on a free port of `addr`, offering STARTTLS with `ca`'s server certificate
    /// (which must name `addr`), and delivers into `mailbox`.
    pub fn start_tls(
        addr: Ipv4Addr,
        ca: &TestCa,
        mailbox: Arc<Mailbox>,
    ) -> Result<SmtpSink, BenchError> {
        let config = server_config(&ca.server_cert(), &ca.server_key())?;
        SmtpSink::listen(addr, mailbox, Some(Arc::new(config)))
            .map_err(BenchError::io(format!("smtp sink on {addr}")))
    }

    fn listen(
        addr: Ipv4Addr,
        mailbox: Arc<Mailbox>,
        tls: Option<Arc<ServerConfig>>,
    ) -> io::Result<SmtpSink> {
        let listener = TcpListener::bind((addr, 0))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let acceptor = std::thread::Builder::new()
            .name("smtp-accept".into())
            .spawn(move || accept(&listener, &mailbox, tls.as_ref(), &stopping))?;
        Ok(SmtpSink {
            addr,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// The TLS side of the STARTTLS sink: the certificate chain in `cert` and its key in `key`
/// (PEM), rustls with ring as otpd uses it.
fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, BenchError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| BenchError::Setup(format!("{}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| BenchError::Setup(format!("{}: {e}", key.display())))?;
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| BenchError::Setup(format!("the sink's TLS config: {e}")))
}

fn accept(
    listener: &TcpListener,
    mailbox: &Arc<Mailbox>,
    tls: Option<&Arc<ServerConfig>>,
    stop: &AtomicBool,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let mailbox = Arc::clone(mailbox);
        let tls = tls.cloned();
        // A session that fails (the client vanished) simply ends.
        let _ = std::thread::Builder::new()
            .name("smtp-session".into())
            .spawn(move || {
                let _ = session(stream, &mailbox, tls.as_ref());
            });
    }
}

/// The envelope of the message being received.
#[derive(Debug, Default)]
struct Envelope {
    from: bool,
    recipients: Vec<String>,
}

/// How a conversation ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// QUIT, end of stream, or a protocol violation: the connection is done.
    Closed,
    /// STARTTLS was agreed: the TLS handshake comes next on the same connection.
    StartTls,
}

/// A connection a conversation runs on: plain TCP, or TLS after STARTTLS.
trait Transport: Read + Write {
    /// Ends the connection properly after QUIT (TLS: close_notify first).
    fn close(&mut self);
}

impl Transport for TcpStream {
    fn close(&mut self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl Transport for StreamOwned<ServerConnection, TcpStream> {
    fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

/// Serves one connection until QUIT or end of stream, offering STARTTLS with `tls` when given.
fn session(
    stream: TcpStream,
    mailbox: &Mailbox,
    tls: Option<&Arc<ServerConfig>>,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut plain = BufReader::with_capacity(READ_BUFFER, stream);
    let greeting = b"220 bench-sink ESMTP ready\r\n".to_vec();
    let (Ended::StartTls, Some(config)) =
        (converse(&mut plain, greeting, mailbox, tls.is_some())?, tls)
    else {
        return Ok(());
    };
    // Nothing is buffered (converse made sure): the client's next bytes are its TLS hello.
    let connection = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
    let mut secure = BufReader::with_capacity(
        READ_BUFFER,
        StreamOwned::new(connection, plain.into_inner()),
    );
    // RFC 3207: a fresh start, no greeting; the client says EHLO again.
    converse(&mut secure, Vec::new(), mailbox, false).map(|_| ())
}

/// Sends what `out` holds and empties it.
fn send(stream: &mut impl Write, out: &mut Vec<u8>) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    stream.write_all(out)?;
    out.clear();
    stream.flush()
}

/// The conversation on one transport, starting by sending `out` (the greeting, or nothing
/// after STARTTLS); STARTTLS is offered when `offer_tls`.
fn converse<S: Transport>(
    reader: &mut BufReader<S>,
    mut out: Vec<u8>,
    mailbox: &Mailbox,
    offer_tls: bool,
) -> io::Result<Ended> {
    let mut envelope = Envelope::default();
    let mut line = Vec::with_capacity(512);
    loop {
        if reader.buffer().is_empty() {
            send(reader.get_mut(), &mut out)?;
        }
        line.clear();
        if reader
            .by_ref()
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)?
            == 0
        {
            send(reader.get_mut(), &mut out)?;
            return Ok(Ended::Closed);
        }
        let command = String::from_utf8_lossy(&line);
        let command = command.trim_end_matches(['\r', '\n']);
        let verb = command
            .get(..4)
            .map(str::to_ascii_uppercase)
            .unwrap_or_default();
        match verb.as_str() {
            "EHLO" => {
                out.extend_from_slice(b"250-bench-sink\r\n250-PIPELINING\r\n");
                if offer_tls {
                    out.extend_from_slice(b"250-STARTTLS\r\n");
                }
                out.extend_from_slice(b"250-8BITMIME\r\n250 SIZE 1048576\r\n");
            }
            "HELO" => out.extend_from_slice(b"250 bench-sink\r\n"),
            "STAR" if offer_tls && command.eq_ignore_ascii_case("STARTTLS") => {
                if !reader.buffer().is_empty() {
                    // Sent in clear behind STARTTLS: it must not be taken as said inside TLS.
                    out.extend_from_slice(b"554 5.5.1 nothing may follow STARTTLS in clear\r\n");
                    send(reader.get_mut(), &mut out)?;
                    reader.get_mut().close();
                    return Ok(Ended::Closed);
                }
                out.extend_from_slice(b"220 2.0.0 ready to start TLS\r\n");
                send(reader.get_mut(), &mut out)?;
                return Ok(Ended::StartTls);
            }
            "MAIL" => {
                envelope = Envelope {
                    from: true,
                    recipients: Vec::new(),
                };
                out.extend_from_slice(b"250 OK\r\n");
            }
            "RCPT" if !envelope.from => out.extend_from_slice(b"503 MAIL first\r\n"),
            "RCPT" => match address(command) {
                Some(recipient) => {
                    envelope.recipients.push(recipient);
                    out.extend_from_slice(b"250 OK\r\n");
                }
                None => out.extend_from_slice(b"501 bad recipient\r\n"),
            },
            "DATA" if envelope.recipients.is_empty() => {
                out.extend_from_slice(b"503 RCPT first\r\n");
            }
            "DATA" => {
                out.extend_from_slice(b"354 end with <CRLF>.<CRLF>\r\n");
                send(reader.get_mut(), &mut out)?;
                let Some(message) = read_data(reader)? else {
                    out.extend_from_slice(b"552 message too large\r\n");
                    envelope = Envelope::default();
                    continue;
                };
                let code = mime::code_in(&message);
                for recipient in &envelope.recipients {
                    mailbox.deliver(recipient, code.clone());
                }
                envelope = Envelope::default();
                out.extend_from_slice(b"250 OK queued\r\n");
            }
            "RSET" => {
                envelope = Envelope::default();
                out.extend_from_slice(b"250 OK\r\n");
            }
            "NOOP" => out.extend_from_slice(b"250 OK\r\n"),
            "QUIT" => {
                out.extend_from_slice(b"221 bye\r\n");
                send(reader.get_mut(), &mut out)?;
                reader.get_mut().close();
                return Ok(Ended::Closed);
            }
            _ => out.extend_from_slice(b"502 command not implemented\r\n"),
        }
    }
}

/// The address inside `<...>` of a MAIL or RCPT command.
fn address(command: &str) -> Option<String> {
    let start = command.find('<')? + 1;
    let end = start + command[start..].find('>')?;
    let address = &command[start..end];
    (!address.is_empty()).then(|| address.to_string())
}

/// Reads a message up to the `.` line, undoing dot-stuffing. `None` when it was larger than
/// [`MAX_MESSAGE`] (it is read to the end all the same, so the session stays in step).
fn read_data(reader: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut message = Vec::with_capacity(2048);
    let mut line = Vec::with_capacity(256);
    let mut too_large = false;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok((!too_large).then_some(message));
        }
        let content = line.strip_prefix(b".").unwrap_or(&line);
        if message.len() + content.len() > MAX_MESSAGE {
            too_large = true;
        } else {
            message.extend_from_slice(content);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn exchange(sink: &SmtpSink, script: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", sink.port())).unwrap();
        // A sink that waits for more (a TLS hello that never comes) fails the test, not hangs it.
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(script.as_bytes()).unwrap();
        let mut replies = String::new();
        stream.read_to_string(&mut replies).unwrap();
        replies
    }

    /// The code of each reply; a multi-line reply counts once, by its last line.
    fn codes(replies: &str) -> Vec<&str> {
        replies
            .lines()
            .filter(|l| l.as_bytes().get(3) != Some(&b'-'))
            .map(|l| &l[..3])
            .collect()
    }

    #[test]
    fn a_pipelined_session_is_answered_in_order_and_the_code_delivered() {
        let mailbox = Arc::new(Mailbox::new());
        let sink = SmtpSink::start(Arc::clone(&mailbox)).unwrap();
        // Everything at once, the body included, as an impatient pipelining client might.
        let replies = exchange(
            &sink,
            "EHLO client\r\nMAIL FROM:<otp@example.test>\r\nRCPT TO:<Bob@Example.Test>\r\nDATA\r\n\
             Subject: code\r\n\r\nYour login code is: 123456\r\n..dot-stuffed line\r\n.\r\n\
             NOOP\r\nQUIT\r\n",
        );
        assert_eq!(
            codes(&replies),
            ["220", "250", "250", "250", "354", "250", "250", "221"]
        );
        assert_eq!(
            mailbox.take("bob@example.test", Duration::from_secs(1)),
            Some(Some("123456".into()))
        );
    }

    /// One reply, all its lines, read a byte at a time so nothing after it is consumed (the
    /// TLS handshake follows STARTTLS's reply on the same stream).
    fn reply(stream: &mut impl Read) -> String {
        let mut text = Vec::new();
        let mut line_start = 0;
        let mut byte = [0u8; 1];
        loop {
            stream.read_exact(&mut byte).unwrap();
            text.push(byte[0]);
            if byte[0] == b'\n' {
                if text.get(line_start + 3) == Some(&b' ') {
                    return String::from_utf8(text).unwrap();
                }
                line_start = text.len();
            }
        }
    }

    /// A client that trusts `ca` only and checks the server's certificate names 127.0.0.1.
    fn client_config(ca: &TestCa) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca.ca_cert()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    #[test]
    fn starttls_then_a_message_inside_tls_lands_in_the_mailbox() {
        let ca = TestCa::new("sink-test-ca");
        let mailbox = Arc::new(Mailbox::new());
        let sink = SmtpSink::start_tls(Ipv4Addr::LOCALHOST, &ca, Arc::clone(&mailbox)).unwrap();
        let mut tcp = TcpStream::connect(("127.0.0.1", sink.port())).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert!(reply(&mut tcp).starts_with("220 "));
        tcp.write_all(b"EHLO client\r\n").unwrap();
        assert!(reply(&mut tcp).contains("250-STARTTLS\r\n"));
        tcp.write_all(b"STARTTLS\r\n").unwrap();
        assert!(reply(&mut tcp).starts_with("220 "));

        let name = rustls::pki_types::ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
        let connection = rustls::ClientConnection::new(client_config(&ca), name).unwrap();
        let mut tls = StreamOwned::new(connection, tcp);
        tls.write_all(b"EHLO client\r\n").unwrap();
        let ehlo = reply(&mut tls);
        assert!(ehlo.starts_with("250-bench-sink"), "{ehlo}");
        assert!(
            !ehlo.contains("STARTTLS"),
            "offered again inside TLS: {ehlo}"
        );
        assert!(tls.conn.negotiated_cipher_suite().is_some());
        // Pipelined inside TLS, as otpd sends it.
        tls.write_all(b"MAIL FROM:<otp@example.test>\r\nRCPT TO:<carol@example.test>\r\nDATA\r\n")
            .unwrap();
        let answers: Vec<String> = (0..3).map(|_| reply(&mut tls)).collect();
        assert_eq!(codes(&answers.concat()), ["250", "250", "354"]);
        tls.write_all(b"Subject: code\r\n\r\nYour login code is: 654321\r\n.\r\nQUIT\r\n")
            .unwrap();
        assert!(reply(&mut tls).starts_with("250 "));
        assert!(reply(&mut tls).starts_with("221 "));
        assert_eq!(
            mailbox.take("carol@example.test", Duration::from_secs(1)),
            Some(Some("654321".into()))
        );
    }

    #[test]
    fn commands_pipelined_behind_starttls_end_the_session() {
        let ca = TestCa::new("sink-test-ca");
        let mailbox = Arc::new(Mailbox::new());
        let sink = SmtpSink::start_tls(Ipv4Addr::LOCALHOST, &ca, Arc::clone(&mailbox)).unwrap();
        let replies = exchange(
            &sink,
            "EHLO c\r\nSTARTTLS\r\nMAIL FROM:<o@example.test>\r\nRCPT TO:<a@example.test>\r\n",
        );
        assert_eq!(codes(&replies), ["220", "250", "554"]);
        assert_eq!(mailbox.delivered(), 0);
    }

    #[test]
    fn the_loopback_sink_offers_no_starttls_and_serves_a_plain_client() {
        let mailbox = Arc::new(Mailbox::new());
        let sink = SmtpSink::start(Arc::clone(&mailbox)).unwrap();
        let replies = exchange(
            &sink,
            "EHLO c\r\nSTARTTLS\r\nMAIL FROM:<o@example.test>\r\nRCPT TO:<d@example.test>\r\n\
             DATA\r\n\r\ncode is: 333333\r\n.\r\nQUIT\r\n",
        );
        assert!(!replies.contains("STARTTLS"), "{replies}");
        assert_eq!(
            codes(&replies),
            ["220", "250", "502", "250", "250", "354", "250", "221"]
        );
        assert_eq!(
            mailbox.take("d@example.test", Duration::from_secs(1)),
            Some(Some("333333".into()))
        );
    }

    #[test]
    fn commands_out_of_order_are_refused_and_rset_clears_the_envelope() {
        let mailbox = Arc::new(Mailbox::new());
        let sink = SmtpSink::start(Arc::clone(&mailbox)).unwrap();
        let replies = exchange(
            &sink,
            "HELO c\r\nRCPT TO:<a@example.test>\r\nDATA\r\nMAIL FROM:<>\r\n\
             RCPT TO:<a@example.test>\r\nRSET\r\nDATA\r\nVRFY a\r\nQUIT\r\n",
        );
        assert_eq!(
            codes(&replies),
            [
                "220", "250", "503", "503", "250", "250", "250", "503", "502", "221"
            ]
        );
        assert_eq!(mailbox.delivered(), 0);
    }

    #[test]
    fn two_messages_on_one_connection_reach_two_recipients() {
        let mailbox = Arc::new(Mailbox::new());
        let sink = SmtpSink::start(Arc::clone(&mailbox)).unwrap();
        let one = |to: &str, code: &str| {
            format!(
                "MAIL FROM:<o@example.test>\r\nRCPT TO:<{to}>\r\nDATA\r\n\r\ncode is: {code}\r\n.\r\n"
            )
        };
        let script = format!(
            "EHLO c\r\n{}{}QUIT\r\n",
            one("a@example.test", "111111"),
            one("b@example.test", "222222")
        );
        exchange(&sink, &script);
        let take = |who| mailbox.take(who, Duration::from_secs(1));
        assert_eq!(take("a@example.test"), Some(Some("111111".into())));
        assert_eq!(take("b@example.test"), Some(Some("222222".into())));
    }
}
