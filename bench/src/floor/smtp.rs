//! The least a login's mail can cost: one SMTP transaction to the benchmark's sink over a
//! connection kept open, sent the cheapest way SMTP allows. The envelope (MAIL, RCPT, DATA)
//! goes in one write, as PIPELINING permits, and the message in a second one after the
//! server's 354: RFC 2920 ends a pipelined group at DATA, and BDAT (RFC 3030) would still
//! wait for the MAIL and RCPT replies. The message is the smallest that still carries a code the sink can read: no MIME
//! parts, no encodings, no Date or Message-ID. A blocking socket, so no event loop either.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;

/// Where the floor's mails come from.
const SENDER: &str = "floor@bench.invalid";

/// One open SMTP connection to the sink, greeted and past EHLO.
#[derive(Debug)]
pub struct BareSmtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl BareSmtp {
    /// Connects to the sink on 127.0.0.1:`port` and says EHLO.
    pub fn connect(port: u16) -> io::Result<BareSmtp> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        let mut smtp = BareSmtp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        smtp.expect(220)?;
        smtp.writer.write_all(b"EHLO floor.bench.invalid\r\n")?;
        smtp.expect(250)?;
        Ok(smtp)
    }

    /// Mails `code` to `recipient`: two writes, two waits for the server.
    pub fn send(&mut self, recipient: &str, code: &str) -> io::Result<()> {
        let envelope = format!("MAIL FROM:<{SENDER}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n");
        self.writer.write_all(envelope.as_bytes())?;
        self.expect(250)?;
        self.expect(250)?;
        self.expect(354)?;
        let message = format!(
            "From: <{SENDER}>\r\nTo: <{recipient}>\r\nSubject: Login code\r\n\r\n\
             Your login code is: {code}\r\n.\r\n"
        );
        self.writer.write_all(message.as_bytes())?;
        self.expect(250)
    }

    /// Reads one reply, all its lines, and checks its code.
    fn expect(&mut self, wanted: u16) -> io::Result<()> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            // "250-..." continues a reply, "250 ..." ends it.
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        match line.get(..3).and_then(|code| code.parse::<u16>().ok()) {
            Some(code) if code == wanted => Ok(()),
            _ => Err(io::Error::other(format!(
                "expected {wanted}, the sink said {:?}",
                line.trim_end()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Mailbox;
    use crate::sink::SmtpSink;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn each_mail_reaches_the_mailbox_with_its_code_on_one_connection() {
        let mailbox = Arc::new(Mailbox::new());
        let sink = SmtpSink::start(Arc::clone(&mailbox)).unwrap();
        let mut smtp = BareSmtp::connect(sink.port()).unwrap();
        for code in ["123456", "654321"] {
            smtp.send("floor0@bench.invalid", code).unwrap();
            let taken = mailbox.take("floor0@bench.invalid", Duration::from_secs(5));
            assert_eq!(taken, Some(Some(code.to_string())));
        }
        assert_eq!(mailbox.delivered(), 2);
    }

    #[test]
    fn a_refused_recipient_is_an_error() {
        let mailbox = Arc::new(Mailbox::new());
        let sink = SmtpSink::start(Arc::clone(&mailbox)).unwrap();
        let mut smtp = BareSmtp::connect(sink.port()).unwrap();
        // The sink answers 501 to a recipient without an address.
        let error = smtp.send("", "123456").unwrap_err();
        assert!(error.to_string().contains("expected 250"), "{error}");
        assert_eq!(mailbox.delivered(), 0);
    }
}
