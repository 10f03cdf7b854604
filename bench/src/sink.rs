//! A minimal SMTP server on loopback that takes the code out of every message it accepts and
//! leaves it in the [`Mailbox`] for the login waiting on that recipient.
//!
//! It speaks what a submission client needs (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) with
//! one thread per connection. It is pipelining-safe: commands are read from one buffered reader,
//! answered in order, and answers are flushed only when no further command is already buffered,
//! so a client that sends MAIL, RCPT and DATA at once gets all three answers, in order, at once.
//! The message is parsed before DATA is acknowledged, so by the time otpd hears "250" (and
//! answers the module with its prompt) the code is already waiting in the mailbox.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crate::mailbox::Mailbox;
use crate::mime;

/// The longest command line accepted (RFC 5321 says 512 with the CRLF; some slack).
const MAX_LINE: u64 = 4096;
/// The largest message kept; a code mail is about 1 KiB.
const MAX_MESSAGE: usize = 1 << 20;

/// A running sink; stops accepting when dropped (open sessions end when their client hangs up).
#[derive(Debug)]
pub struct SmtpSink {
    port: u16,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl SmtpSink {
    /// Listens on a free port of 127.0.0.1 and delivers into `mailbox`.
    pub fn start(mailbox: Arc<Mailbox>) -> io::Result<SmtpSink> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let acceptor = std::thread::Builder::new()
            .name("smtp-accept".into())
            .spawn(move || accept(&listener, &mailbox, &stopping))?;
        Ok(SmtpSink {
            port,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept(listener: &TcpListener, mailbox: &Arc<Mailbox>, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let mailbox = Arc::clone(mailbox);
        // A session that fails (the client vanished) simply ends.
        let _ = std::thread::Builder::new()
            .name("smtp-session".into())
            .spawn(move || {
                let _ = session(stream, &mailbox);
            });
    }
}

/// The envelope of the message being received.
#[derive(Debug, Default)]
struct Envelope {
    from: bool,
    recipients: Vec<String>,
}

/// Serves one connection until QUIT or end of stream.
pub fn session(stream: TcpStream, mailbox: &Mailbox) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream.try_clone()?);
    let mut writer = BufWriter::new(stream);
    writer.write_all(b"220 bench-sink ESMTP ready\r\n")?;
    let mut envelope = Envelope::default();
    let mut line = Vec::with_capacity(512);
    loop {
        if reader.buffer().is_empty() {
            writer.flush()?;
        }
        line.clear();
        if (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line)? == 0 {
            writer.flush()?;
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line);
        let command = command.trim_end_matches(['\r', '\n']);
        let verb = command
            .get(..4)
            .map(str::to_ascii_uppercase)
            .unwrap_or_default();
        match verb.as_str() {
            "EHLO" => writer.write_all(
                b"250-bench-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 1048576\r\n",
            )?,
            "HELO" => writer.write_all(b"250 bench-sink\r\n")?,
            "MAIL" => {
                envelope = Envelope {
                    from: true,
                    recipients: Vec::new(),
                };
                writer.write_all(b"250 OK\r\n")?;
            }
            "RCPT" if !envelope.from => writer.write_all(b"503 MAIL first\r\n")?,
            "RCPT" => match address(command) {
                Some(recipient) => {
                    envelope.recipients.push(recipient);
                    writer.write_all(b"250 OK\r\n")?;
                }
                None => writer.write_all(b"501 bad recipient\r\n")?,
            },
            "DATA" if envelope.recipients.is_empty() => {
                writer.write_all(b"503 RCPT first\r\n")?;
            }
            "DATA" => {
                writer.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
                writer.flush()?;
                let Some(message) = read_data(&mut reader)? else {
                    writer.write_all(b"552 message too large\r\n")?;
                    envelope = Envelope::default();
                    continue;
                };
                let code = mime::code_in(&message);
                for recipient in &envelope.recipients {
                    mailbox.deliver(recipient, code.clone());
                }
                envelope = Envelope::default();
                writer.write_all(b"250 OK queued\r\n")?;
            }
            "RSET" => {
                envelope = Envelope::default();
                writer.write_all(b"250 OK\r\n")?;
            }
            "NOOP" => writer.write_all(b"250 OK\r\n")?,
            "QUIT" => {
                writer.write_all(b"221 bye\r\n")?;
                writer.flush()?;
                let _ = writer.get_ref().shutdown(Shutdown::Both);
                return Ok(());
            }
            _ => writer.write_all(b"502 command not implemented\r\n")?,
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
fn read_data(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Vec<u8>>> {
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
