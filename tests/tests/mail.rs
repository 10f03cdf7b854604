//! End-to-end mail delivery: real otpd, real SMTP servers on loopback (aiosmtpd with STARTTLS,
//! implicit TLS and AUTH, a CA made for the test), a real sendmail-compatible program (msmtp),
//! real libpam logins. Each test reads like the behaviour it proves.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::libpam;
use e2e_tests::login::{LoginResult, login_with, mailed_code, never_prompted};
use e2e_tests::otpd::Otpd;
use e2e_tests::smtp::{MAIL_WAIT, SmtpCapture};
use e2e_tests::stack::PamConfDir;
use e2e_tests::tls::TestCa;

/// Runs one `sshd` login as `user` from `rhost`; `answer` gives the reply to each prompt.
fn login(
    pam: &PamConfDir,
    user: &str,
    rhost: Option<&str>,
    answer: impl FnMut(&str) -> String + 'static,
) -> LoginResult {
    login_with(pam, "sshd", user, rhost, answer)
}

/// otpd with every user required to give a code, mailed to `USER@example.test`, and `mail`
/// as its whole `[mail]` section; a PAM stack for `sshd` that waits up to 30 s for otpd.
fn start(mail: &str) -> (Otpd, PamConfDir) {
    let otpd = Otpd::start_with_text(|socket, state_dir| {
        format!(
            "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n\n[directory]\nemail_template = \"{{user}}@example.test\"\n\n[defaults]\nmode = \"required\"\nresend_cooldown_seconds = 0\n\n{mail}",
            socket.display(),
            state_dir.display()
        )
    });
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "timeout=30 mail_timeout=30");
    (otpd, pam)
}

/// `[mail]` with the test sender and `extra` keys, followed by `servers`.
fn mail(extra: &str, servers: &[String]) -> String {
    format!(
        "[mail]\nfrom = \"otp@example.test\"\n{extra}\n\n{}",
        servers.concat()
    )
}

/// One `[[mail.servers]]` entry on 127.0.0.1.
fn server(name: &str, port: u16, security: &str, extra: &str) -> String {
    format!(
        "[[mail.servers]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"{security}\"\ntimeout_seconds = 5\n{extra}\n\n"
    )
}

/// A capture server started with `flags`.
fn capture(flags: &[String]) -> SmtpCapture {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    SmtpCapture::start_with(&flags)
}

/// capture.py flags: TLS with `ca`'s server certificate, in `mode` (`--starttls` or
/// `--implicit-tls`), requiring AUTH as otp/`password`.
fn tls_auth_flags(ca: &TestCa, mode: &str, password: &str) -> Vec<String> {
    let mut flags = ca.capture_flags();
    flags.extend(
        [mode, "--auth-user", "otp", "--auth-password", password]
            .iter()
            .map(|s| s.to_string()),
    );
    flags
}

/// A file holding `password`, readable by its owner only, as otpd requires.
fn password_file(dir: &Path, password: &str) -> PathBuf {
    let path = dir.join("smtp-password");
    std::fs::write(&path, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// The `server` lines for AUTH as otp with the password in `file` and trust in `ca`.
fn auth_and_ca(file: &Path, ca: &Path) -> String {
    format!(
        "username = \"otp\"\npassword_file = \"{}\"\nca_file = \"{}\"\n",
        file.display(),
        ca.display()
    )
}

/// Each command verb the server received, with `tls=0` or `tls=1`.
fn commands(smtp: &SmtpCapture) -> Vec<String> {
    std::fs::read_to_string(smtp.mail_dir().join("commands.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// True when `needle` appears in any file below `dir`.
fn appears_below(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            appears_below(&path, needle)
        } else {
            let bytes = std::fs::read(&path).unwrap_or_default();
            bytes.windows(needle.len()).any(|w| w == needle)
        }
    })
}

// --- security modes ---

#[test]
fn starttls_with_a_private_ca_and_auth_delivers_and_everything_after_ehlo_is_encrypted() {
    starttls_with_auth_delivers_encrypted(&[]);
}

/// The same with a server that offers PIPELINING: MAIL, RCPT and DATA go out in one TLS write.
#[test]
fn a_pipelining_server_under_starttls_and_auth_gets_the_same_encrypted_delivery() {
    starttls_with_auth_delivers_encrypted(&["--pipelining"]);
}

fn starttls_with_auth_delivers_encrypted(extra: &[&str]) {
    let ca = TestCa::new("otpd test CA");
    let mut flags = tls_auth_flags(&ca, "--starttls", "pass word");
    flags.extend(extra.iter().map(|s| s.to_string()));
    let smtp = capture(&flags);
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path(), "pass word");
    let (otpd, pam) = start(&mail(
        "",
        &[server(
            "relay",
            smtp.port,
            "starttls",
            &auth_and_ca(&pw, &ca.ca_cert()),
        )],
    ));
    let result = login(&pam, "alice", None, mailed_code(smtp.reader(), 1));
    assert_eq!(libpam::code_name(result.code), "PAM_SUCCESS", "{result:?}");
    assert_eq!(smtp.messages().len(), 1);
    let seen = commands(&smtp);
    assert_eq!(seen.first().map(String::as_str), Some("EHLO tls=0"));
    assert!(seen.contains(&"STARTTLS tls=0".to_string()), "{seen:?}");
    for verb in ["AUTH", "MAIL", "RCPT", "DATA"] {
        assert!(seen.contains(&format!("{verb} tls=1")), "{verb}: {seen:?}");
        assert!(!seen.contains(&format!("{verb} tls=0")), "{verb}: {seen:?}");
    }
    assert!(otpd.events("mailed")[0].contains("detail=relay"));
}

#[test]
fn implicit_tls_with_auth_delivers() {
    let ca = TestCa::new("otpd test CA");
    let smtp = capture(&tls_auth_flags(&ca, "--implicit-tls", "s3cret"));
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path(), "s3cret");
    let (_otpd, pam) = start(&mail(
        "",
        &[server(
            "smtps",
            smtp.port,
            "tls",
            &auth_and_ca(&pw, &ca.ca_cert()),
        )],
    ));
    let result = login(
        &pam,
        "bob",
        Some("192.0.2.5"),
        mailed_code(smtp.reader(), 1),
    );
    assert_eq!(libpam::code_name(result.code), "PAM_SUCCESS", "{result:?}");
    assert_eq!(smtp.last().rcpt_tos, vec!["bob@example.test".to_string()]);
    assert!(commands(&smtp).iter().all(|c| c.ends_with("tls=1")));
}

#[test]
fn plain_smtp_to_loopback_delivers_without_a_warning_at_start() {
    // Plain text to a relay on this machine never crosses a network (issue #17: the packaged
    // config warned on every start); the unit tests keep the warning for other hosts.
    let smtp = SmtpCapture::start();
    let (otpd, pam) = start(&mail("", &[server("local", smtp.port, "none", "")]));
    let result = login(&pam, "carol", None, mailed_code(smtp.reader(), 1));
    assert_eq!(libpam::code_name(result.code), "PAM_SUCCESS", "{result:?}");
    assert!(
        !otpd.log().contains("security = \"none\""),
        "{}",
        otpd.log()
    );
}

#[test]
fn a_wrong_password_fails_the_login_with_a_clear_auth_error_and_sends_nothing() {
    let ca = TestCa::new("otpd test CA");
    let smtp = capture(&tls_auth_flags(&ca, "--starttls", "right"));
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path(), "wrong");
    let (otpd, pam) = start(&mail(
        "",
        &[server(
            "relay",
            smtp.port,
            "starttls",
            &auth_and_ca(&pw, &ca.ca_cert()),
        )],
    ));
    let result = login(&pam, "dave", None, never_prompted);
    assert_eq!(
        libpam::code_name(result.code),
        "PAM_AUTHINFO_UNAVAIL",
        "{result:?}"
    );
    assert!(result.errors[0].contains("could not be sent"), "{result:?}");
    let failed = otpd.events("mail_failed");
    assert!(
        failed[0].contains(
            "relay: AUTH as \"otp\" refused: 535 5.7.8 Authentication credentials invalid"
        ),
        "{failed:?}"
    );
    assert!(smtp.messages().is_empty());
    assert!(!commands(&smtp).iter().any(|c| c.starts_with("MAIL")));
}

#[test]
fn a_server_without_starttls_is_refused_under_starttls_and_nothing_is_sent_in_clear() {
    let ca = TestCa::new("otpd test CA");
    let plain = SmtpCapture::start();
    let (otpd, pam) = start(&mail(
        "",
        &[server(
            "relay",
            plain.port,
            "starttls",
            &format!("ca_file = \"{}\"", ca.ca_cert().display()),
        )],
    ));
    let result = login(&pam, "erin", None, never_prompted);
    assert_ne!(libpam::code_name(result.code), "PAM_SUCCESS", "{result:?}");
    let failed = otpd.events("mail_failed");
    assert!(
        failed[0].contains("relay: the server does not offer STARTTLS"),
        "{failed:?}"
    );
    assert_eq!(commands(&plain), vec!["EHLO tls=0".to_string()]);
    assert!(plain.messages().is_empty());
}

#[test]
fn a_certificate_from_an_untrusted_ca_is_refused_in_both_tls_modes() {
    let real = TestCa::new("the server's CA");
    let other = TestCa::new("a CA otpd trusts");
    let starttls = capture(&tls_auth_flags(&real, "--starttls", "pw"));
    let implicit = capture(&tls_auth_flags(&real, "--implicit-tls", "pw"));
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path(), "pw");
    let trust_other = auth_and_ca(&pw, &other.ca_cert());
    let (otpd, pam) = start(&mail(
        "",
        &[
            server("starttls", starttls.port, "starttls", &trust_other),
            server("smtps", implicit.port, "tls", &trust_other),
        ],
    ));
    let result = login(&pam, "frank", None, never_prompted);
    assert_ne!(libpam::code_name(result.code), "PAM_SUCCESS", "{result:?}");
    let failed = &otpd.events("mail_failed")[0];
    assert!(
        failed.contains("starttls: TLS failed: invalid peer certificate: UnknownIssuer"),
        "{failed}"
    );
    assert!(
        failed.contains("smtps: TLS failed: invalid peer certificate: UnknownIssuer"),
        "{failed}"
    );
    assert_eq!(
        commands(&starttls),
        vec!["EHLO tls=0".to_string(), "STARTTLS tls=0".to_string()]
    );
    assert!(commands(&implicit).is_empty());
    assert!(starttls.messages().is_empty() && implicit.messages().is_empty());
}

// --- failover and deadlines ---

/// A port nothing listens on: connecting is refused.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_dead_port_then_a_451_server_then_a_good_one_delivers_exactly_one_message() {
    let busy = capture(&["--reply-code".into(), "451".into(), "--keep-refused".into()]);
    let good = SmtpCapture::start();
    let (otpd, pam) = start(&mail(
        "",
        &[
            server("dead", dead_port(), "none", ""),
            server("busy", busy.port, "none", ""),
            server("good", good.port, "none", ""),
        ],
    ));
    let result = login(&pam, "grace", None, mailed_code(good.reader(), 1));
    assert_eq!(libpam::code_name(result.code), "PAM_SUCCESS", "{result:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(good.messages().len(), 1);
    assert!(busy.messages().is_empty());
    assert_eq!(
        std::fs::read_dir(busy.mail_dir().join("refused"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "json")
            .count(),
        1,
        "the 451 server was tried once"
    );
    assert!(otpd.events("mailed")[0].contains("detail=good"));
}

#[test]
fn when_every_server_fails_the_login_fails_within_the_deadline_and_no_code_is_on_disk() {
    let busy = capture(&["--reply-code".into(), "451".into(), "--keep-refused".into()]);
    // Accepts connections (the kernel completes them) but never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let (otpd, pam) = start(&mail(
        "total_timeout_seconds = 4",
        &[
            server("dead", dead_port(), "none", ""),
            server("silent", silent_port, "none", "")
                .replace("timeout_seconds = 5", "timeout_seconds = 2"),
            server("busy", busy.port, "none", ""),
        ],
    ));
    let started = Instant::now();
    let result = login(&pam, "heidi", None, never_prompted);
    let took = started.elapsed();
    assert_eq!(
        libpam::code_name(result.code),
        "PAM_AUTHINFO_UNAVAIL",
        "{result:?}"
    );
    assert!(took < Duration::from_secs(6), "the login took {took:?}");
    let failed = &otpd.events("mail_failed")[0];
    assert!(
        failed.contains("dead: cannot connect to 127.0.0.1:"),
        "{failed}"
    );
    assert!(
        failed.contains("silent: no answer within 2.0s while connecting"),
        "{failed}"
    );
    assert!(failed.contains("busy: message refused: 451"), "{failed}");
    // The busy server kept what it refused: that is the code, and it is nowhere on disk.
    let refused = std::fs::read_dir(busy.mail_dir().join("refused"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().unwrap() == "json")
        .expect("the refused message");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(refused).unwrap()).unwrap();
    let text = record["text"].as_str().unwrap();
    let start = text.find("code is: ").unwrap() + "code is: ".len();
    let code: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert_eq!(code.len(), 6, "{text}");
    assert!(!appears_below(&otpd.state_dir(), code.as_bytes()));
    assert!(!otpd.log().contains(&code));
    drop(silent);
}

// --- sendmail ---

#[test]
fn without_servers_mail_goes_through_a_real_sendmail_program() {
    let smtp = SmtpCapture::start();
    let dir = tempfile::tempdir().unwrap();
    // msmtp is a sendmail-compatible program; this wrapper only points it at the capture server.
    let wrapper = dir.path().join("sendmail");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec /usr/bin/msmtp --host=127.0.0.1 --port={} --auth=off --tls=off \"$@\"\n",
            smtp.port
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (otpd, pam) = start(&mail(
        &format!("sendmail_path = \"{}\"", wrapper.display()),
        &[],
    ));
    let result = login(
        &pam,
        "ivan",
        Some("198.51.100.7"),
        mailed_code(smtp.reader(), 1),
    );
    assert_eq!(libpam::code_name(result.code), "PAM_SUCCESS", "{result:?}");
    let mail = smtp.last();
    assert_eq!(mail.rcpt_tos, vec!["ivan@example.test".to_string()]);
    assert!(
        mail.text.contains("sshd, ssh from 198.51.100.7"),
        "{}",
        mail.text
    );
    assert!(otpd.events("mailed")[0].contains("detail=sendmail"));
}

// --- injection ---

#[test]
fn a_remote_host_carrying_smtp_commands_gives_exactly_one_message_with_them_neutralised() {
    let smtp = SmtpCapture::start();
    let (_otpd, pam) = start(&mail("", &[server("local", smtp.port, "none", "")]));
    let rhost = "evil\r\n.\r\nMAIL FROM:<attacker@evil.test>\r\nRCPT TO:<victim@evil.test>\r\nDATA\r\nSubject: pwned\n.\n";
    let result = login(&pam, "judy", Some(rhost), mailed_code(smtp.reader(), 1));
    assert_eq!(libpam::code_name(result.code), "PAM_SUCCESS", "{result:?}");
    std::thread::sleep(Duration::from_millis(300));
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].rcpt_tos, vec!["judy@example.test".to_string()]);
    assert!(
        mails[0].text.contains(
            "from evil.MAIL FROM:<attacker@evil.test>RCPT TO:<victim@evil.test>DATASubject: pwned.)"
        ),
        "{}",
        mails[0].text
    );
    assert!(mails[0].headers.get("Subject").unwrap().as_str().unwrap() != "pwned");
    let seen = commands(&smtp);
    assert_eq!(
        seen.iter().filter(|c| c.starts_with("MAIL")).count(),
        1,
        "{seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|c| c.starts_with("RCPT")).count(),
        1,
        "{seen:?}"
    );
}

#[test]
fn a_user_name_carrying_smtp_commands_gets_no_address_so_no_mail_and_no_smtp_session() {
    let smtp = SmtpCapture::start();
    let (otpd, pam) = start(&mail("", &[server("local", smtp.port, "none", "")]));
    // `{user}@example.test` with this name is no address; under "required" such a user is not
    // enrolled (policy), so there is nothing to mail and nothing reaches the SMTP server.
    let user = "eve\r\n.\r\nMAIL FROM:<attacker@evil.test>\r\nRCPT TO:<victim@evil.test>";
    let result = login(&pam, user, None, never_prompted);
    assert!(result.prompts.is_empty(), "{result:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(smtp.messages().is_empty());
    assert!(commands(&smtp).is_empty(), "no SMTP session at all");
    let skipped = otpd.events("skipped");
    assert!(
        skipped[0].contains("user=eve\\x0d\\x0a.\\x0d\\x0aMAIL FROM:<attacker@evil.test>"),
        "{skipped:?}"
    );
    assert!(skipped[0].ends_with("detail=no_address"), "{skipped:?}");
}

/// Runs otpd on `config` and expects it to refuse to start; returns what it printed.
fn refused_at_start(config: &str) -> String {
    Otpd::refused_at_start(|_, state| config.replace("STATE", &state.display().to_string())).log
}

#[test]
fn a_config_address_with_cr_lf_is_refused_at_start_with_its_position() {
    let stderr = refused_at_start(
        "[daemon]\nsocket = \"STATE/otpd.sock\"\nstate_dir = \"STATE\"\n\n[mail]\nfrom = \"otp@example.test\\r\\nBcc: all@example.test\"\n",
    );
    assert!(
        stderr.contains("otpd.toml:6:8: from is not a valid address"),
        "{stderr}"
    );
    let stderr = refused_at_start(
        "[daemon]\nsocket = \"STATE/otpd.sock\"\nstate_dir = \"STATE\"\n\n[mail]\nfrom = \"otp@example.test\"\nreply_to = \"help@example.test\\nRCPT TO:<x@evil.test>\"\n",
    );
    assert!(
        stderr.contains("otpd.toml:7:12: reply_to is not a valid address"),
        "{stderr}"
    );
}

#[test]
fn a_password_file_others_can_read_stops_otpd_at_start_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path(), "secret");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let stderr = refused_at_start(&format!(
        "[daemon]\nsocket = \"STATE/otpd.sock\"\nstate_dir = \"STATE\"\n\n[mail]\nfrom = \"otp@example.test\"\n[[mail.servers]]\nname = \"relay\"\nhost = \"127.0.0.1\"\nsecurity = \"starttls\"\nusername = \"otp\"\npassword_file = \"{}\"\n",
        pw.display()
    ));
    assert!(
        stderr.contains("otpd.toml:12:17: password_file"),
        "{stderr}"
    );
    assert!(stderr.contains("chmod 600"), "{stderr}");
}

#[test]
fn an_unknown_template_variable_stops_otpd_at_start_with_its_position() {
    let stderr = refused_at_start(
        "[daemon]\nsocket = \"STATE/otpd.sock\"\nstate_dir = \"STATE\"\n\n[mail]\nfrom = \"otp@example.test\"\ntext_template = \"Code {code} for {usr}\"\n",
    );
    assert!(
        stderr.contains("otpd.toml:7:34: text_template unknown variable {usr}"),
        "{stderr}"
    );
}

// --- the message ---

#[test]
fn a_utf8_subject_and_body_arrive_intact() {
    let smtp = SmtpCapture::start();
    let subject = "Giriş kodunuz — ログインコード ({host})";
    let text = "Merhaba {user}! Your code is: {code}\\nログインコードは {code} です。Şifrenizi paylaşmayın.\\n";
    let html = "<p>Kodunuz / コード: <b>{code}</b> — kullanıcı {user}</p>";
    let (_otpd, pam) = start(&mail(
        &format!(
            "from_name = \"Güvenlik ・ セキュリティ\"\nsubject = \"{subject}\"\ntext_template = \"{text}\"\nhtml_template = \"{html}\""
        ),
        &[server("local", smtp.port, "none", "")],
    ));
    let result = login(&pam, "ayse", None, mailed_code(smtp.reader(), 1));
    assert_eq!(libpam::code_name(result.code), "PAM_SUCCESS", "{result:?}");
    let mail = smtp.last();
    let host = nix_hostname();
    assert_eq!(
        mail.subject,
        format!("Giriş kodunuz — ログインコード ({host})")
    );
    let code = mail.code();
    assert_eq!(
        mail.text.replace("\r\n", "\n"),
        format!(
            "Merhaba ayse! Your code is: {code}\nログインコードは {code} です。Şifrenizi paylaşmayın.\n"
        )
    );
    let from = mail
        .headers
        .get("From")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert!(from.starts_with("Güvenlik ・ セキュリティ"), "{from}");
    let raw = String::from_utf8(mail.raw.clone()).unwrap();
    assert!(raw.is_ascii(), "no raw 8-bit text on the wire");
    assert!(raw.contains("Content-Transfer-Encoding: base64"));
    assert!(!raw.contains("Content-Transfer-Encoding: 7bit"));
    assert!(raw.contains("Auto-Submitted: auto-generated"));
    assert!(raw.contains("Message-ID: <"));
    assert!(raw.contains("Date: "));
}

fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_profile_gets_its_own_subject_and_html_escapes_untrusted_values() {
    let smtp = SmtpCapture::start();
    let (otpd, pam) = {
        let otpd = Otpd::start_with_text(|socket, state_dir| {
            format!(
                "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n\n[directory]\nemail_template = \"{{user}}@example.test\"\n\n[defaults]\nmode = \"required\"\nresend_cooldown_seconds = 0\n\n[profiles.admins]\nsubject = \"Admin login code for {{user}} on {{host}}\"\n\n[[policies]]\nmatch_user = \"boss\"\nprofile = \"admins\"\n\n{}",
                socket.display(),
                state_dir.display(),
                mail("", &[server("local", smtp.port, "none", "")])
            )
        });
        let pam = PamConfDir::new();
        pam.otp_then_permit("sshd", &otpd.socket, "timeout=30 mail_timeout=30");
        (otpd, pam)
    };
    let reader = smtp.reader();
    let r = login(
        &pam,
        "boss",
        Some("<img src=x>"),
        mailed_code(reader.clone(), 1),
    );
    assert_eq!(libpam::code_name(r.code), "PAM_SUCCESS", "{r:?}");
    let mail = smtp.last();
    assert!(
        mail.subject.starts_with("Admin login code for boss on "),
        "{}",
        mail.subject
    );
    let html = std::fs::read_dir(smtp.mail_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().unwrap() == "json")
        .map(|p| serde_json::from_slice::<serde_json::Value>(&std::fs::read(p).unwrap()).unwrap())
        .unwrap()["html"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(html.contains("from &lt;img src=x&gt;)"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    let r = login(&pam, "worker", None, move |_| {
        reader.wait_for(2, MAIL_WAIT).last().unwrap().code()
    });
    assert_eq!(libpam::code_name(r.code), "PAM_SUCCESS", "{r:?}");
    assert!(smtp.last().subject.starts_with("Your login code for "));
    drop(otpd);
}

#[test]
fn a_dkim_signed_code_mail_verifies_against_the_published_key() {
    let smtp = SmtpCapture::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dkim.key");
    let ok = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let public = Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(&key)
        .stderr(Stdio::null())
        .output()
        .unwrap()
        .stdout;
    let (_otpd, pam) = start(&format!(
        "{}[mail.dkim]\nselector = \"otp\"\ndomain = \"example.test\"\nkey_file = \"{}\"\n",
        mail("", &[server("local", smtp.port, "none", "")]),
        key.display()
    ));
    let result = login(&pam, "kim", None, mailed_code(smtp.reader(), 1));
    assert_eq!(libpam::code_name(result.code), "PAM_SUCCESS", "{result:?}");
    let eml = std::fs::read_dir(smtp.mail_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().unwrap() == "eml")
        .unwrap();
    let record = format!("v=DKIM1; k=rsa; p={}", base64(&public));
    let verify = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            "import sys, dkim\n\
             record = sys.argv[2].encode()\n\
             def dns(name, timeout=5):\n    return record if name == b'otp._domainkey.example.test.' else None\n\
             print(dkim.verify(open(sys.argv[1], 'rb').read(), dnsfunc=dns))",
        )
        .arg(&eml)
        .arg(&record)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&verify.stdout).trim(),
        "True",
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// Standard base64 (the DKIM record's `p=`), small enough to write here.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
