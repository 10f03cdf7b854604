//! A scripted SMTP server on loopback for the mailer's unit tests: it answers each command as
//! the script says, counts connections and keeps every command and message it received.
//! (The end-to-end tests use a real server, aiosmtpd; this one can misbehave on cue.)

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How the server answers.
#[derive(Debug, Clone)]
pub struct Script {
    /// Send the 220 greeting at all (a server that never greets makes the client time out).
    pub greet: bool,
    /// Extra EHLO lines, e.g. "AUTH PLAIN LOGIN".
    pub extensions: Vec<&'static str>,
    /// The reply to AUTH.
    pub auth: &'static str,
    /// What is written back to STARTTLS, CRLF between lines (the server never starts TLS).
    pub starttls: &'static str,
    /// The reply to MAIL FROM.
    pub mail: &'static str,
    /// The reply to RCPT TO.
    pub rcpt: &'static str,
    /// The reply after the message; `None` never answers.
    pub end: Option<&'static str>,
    /// Drop every connection right after accepting it.
    pub hang_up: bool,
    /// Close a connection after this many messages, without a word, as a server does to a
    /// client idle past its timeout.
    pub close_after: Option<usize>,
    /// The scripted MAIL and RCPT replies apply to this many of each command only (counted
    /// over all connections); later ones get `250 ok`, as from a rate limit that has passed.
    pub refuse_first: Option<usize>,
    /// Hang up right after a 5xx reply to MAIL or RCPT, as Exim's ACL `drop` does.
    pub close_after_refusal: bool,
    /// Connections served at once; more are greeted with a 421 and closed, as by Exim at
    /// `smtp_accept_max`.
    pub max_sessions: Option<usize>,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            greet: true,
            extensions: Vec::new(),
            auth: "235 2.7.0 ok",
            starttls: "454 4.7.0 TLS not available",
            mail: "250 ok",
            rcpt: "250 ok",
            end: Some("250 2.0.0 queued"),
            hang_up: false,
            close_after: None,
            refuse_first: None,
            close_after_refusal: false,
            max_sessions: None,
        }
    }
}

/// A running scripted server.
#[derive(Debug, Clone)]
pub struct TestServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    connections: Arc<AtomicUsize>,
    /// Commands that arrived with the next one already behind them: pipelined.
    pipelined: Arc<AtomicUsize>,
    /// Each login as `mechanism user password`, decoded.
    logins: Arc<Mutex<Vec<String>>>,
    commands: Arc<Mutex<Vec<String>>>,
    messages: Arc<Mutex<Vec<String>>>,
    /// Sessions open now, and the most that were ever open at once.
    sessions: Arc<Mutex<(usize, usize)>>,
    /// MAIL and RCPT commands seen, for `refuse_first`.
    envelopes: Arc<Mutex<(usize, usize)>>,
}

impl TestServer {
    /// Starts a server that follows `script`.
    pub async fn start(script: Script) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = TestServer {
            port: listener.local_addr().unwrap().port(),
            connections: Arc::default(),
            pipelined: Arc::default(),
            logins: Arc::default(),
            commands: Arc::default(),
            messages: Arc::default(),
            sessions: Arc::default(),
            envelopes: Arc::default(),
        };
        let shared = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                if script.hang_up {
                    drop(stream);
                    continue;
                }
                let (shared, script) = (shared.clone(), script.clone());
                tokio::spawn(async move {
                    let over_limit = {
                        let mut sessions = shared.sessions.lock().unwrap();
                        sessions.0 += 1;
                        sessions.1 = sessions.1.max(sessions.0);
                        script.max_sessions.is_some_and(|max| sessions.0 > max)
                    };
                    if over_limit {
                        let mut stream = stream;
                        let _ = stream
                            .write_all(b"421 4.3.2 Too many concurrent SMTP connections\r\n")
                            .await;
                    } else {
                        shared.serve(stream, &script).await;
                    }
                    shared.sessions.lock().unwrap().0 -= 1;
                });
            }
        });
        server
    }

    /// A port where nothing listens: connecting is refused at once.
    pub async fn dead_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The most sessions that were open at once.
    pub fn most_at_once(&self) -> usize {
        self.sessions.lock().unwrap().1
    }

    /// Every command line received, in order.
    pub fn commands(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }

    /// Every AUTH as `MECHANISM user password`, decoded from base64.
    pub fn logins(&self) -> Vec<String> {
        self.logins.lock().unwrap().clone()
    }

    /// Commands received with another command already waiting behind them.
    pub fn pipelined(&self) -> usize {
        self.pipelined.load(Ordering::SeqCst)
    }

    /// Every message received (the lines between DATA and the final dot).
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    async fn serve(&self, stream: TcpStream, script: &Script) {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let say = |text: String| {
            let mut line = text.into_bytes();
            line.extend_from_slice(b"\r\n");
            line
        };
        if !script.greet {
            // Keep the connection open and silent until the client gives up.
            while let Ok(Some(_)) = lines.next_line().await {}
            return;
        }
        let _ = write.write_all(&say("220 test.invalid ESMTP".into())).await;
        let mut taken = 0;
        // Whether the transaction under way has a recipient that was accepted.
        let mut has_recipient = false;
        while let Ok(Some(line)) = lines.next_line().await {
            if !lines.get_ref().buffer().is_empty() {
                self.pipelined.fetch_add(1, Ordering::SeqCst);
            }
            self.commands.lock().unwrap().push(line.clone());
            let verb = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            let reply = match verb.as_str() {
                "EHLO" => {
                    let mut text = String::from("250-test.invalid");
                    for ext in &script.extensions {
                        text.push_str(&format!("\r\n250-{ext}"));
                    }
                    text.push_str("\r\n250 8BITMIME");
                    text
                }
                "AUTH" => {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    let decode = |b64: &str| {
                        String::from_utf8(BASE64.decode(b64).unwrap_or_default())
                            .unwrap_or_default()
                    };
                    let login = match words.get(1).map(|m| m.to_ascii_uppercase()).as_deref() {
                        Some("PLAIN") => {
                            let token = decode(words.get(2).unwrap_or(&""));
                            format!("PLAIN {}", token.replace('\0', " ").trim_start())
                        }
                        Some("LOGIN") => {
                            let mut answers = Vec::new();
                            for prompt in ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6"] {
                                let _ = write.write_all(&say(prompt.into())).await;
                                let answer = lines.next_line().await.ok().flatten();
                                answers.push(decode(&answer.unwrap_or_default()));
                            }
                            format!("LOGIN {}", answers.join(" "))
                        }
                        _ => "unknown".into(),
                    };
                    self.logins.lock().unwrap().push(login);
                    script.auth.to_string()
                }
                "STARTTLS" => script.starttls.to_string(),
                "MAIL" | "RCPT" => {
                    let seen = {
                        let mut envelopes = self.envelopes.lock().unwrap();
                        let count = if verb == "MAIL" {
                            &mut envelopes.0
                        } else {
                            &mut envelopes.1
                        };
                        *count += 1;
                        *count
                    };
                    let scripted = if verb == "MAIL" {
                        script.mail
                    } else {
                        script.rcpt
                    };
                    let reply = if script.refuse_first.is_some_and(|first| seen > first) {
                        "250 ok"
                    } else {
                        scripted
                    };
                    if verb == "RCPT" && reply.starts_with('2') {
                        has_recipient = true;
                    }
                    reply.to_string()
                }
                // As Postfix and Exim do: DATA without an accepted recipient is refused.
                "DATA" if !has_recipient => "554 5.5.1 Error: no valid recipients".to_string(),
                "RSET" | "NOOP" => {
                    has_recipient = false;
                    "250 ok".to_string()
                }
                "QUIT" => {
                    let _ = write.write_all(&say("221 bye".into())).await;
                    return;
                }
                "DATA" => {
                    let _ = write.write_all(&say("354 go ahead".into())).await;
                    let mut message = Vec::new();
                    while let Ok(Some(body_line)) = lines.next_line().await {
                        if body_line == "." {
                            break;
                        }
                        message.push(body_line);
                    }
                    self.messages.lock().unwrap().push(message.join("\n"));
                    has_recipient = false;
                    taken += 1;
                    if script.close_after == Some(taken) {
                        let _ = write.write_all(&say("250 2.0.0 queued".into())).await;
                        return;
                    }
                    match script.end {
                        Some(reply) => reply.to_string(),
                        None => {
                            while let Ok(Some(_)) = lines.next_line().await {}
                            return;
                        }
                    }
                }
                _ => "500 unknown command".to_string(),
            };
            let hang_up = reply.starts_with("421")
                || (script.close_after_refusal
                    && reply.starts_with('5')
                    && matches!(verb.as_str(), "MAIL" | "RCPT"));
            if write.write_all(&say(reply)).await.is_err() || hang_up {
                return;
            }
        }
    }
}
