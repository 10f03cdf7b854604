//! Services whose clients send one secret (FTP, HTTP Basic, WebDAV). They cannot answer a
//! second prompt: the client answers the code prompt with the password, so the module reached
//! the usual way (through common-auth, where pam-auth-update puts it) fails every login. They
//! need the documented stack instead: the module with `split` takes the secret apart, a
//! `requisite` password module checks the password part, the module checks the code part.

use common::service::Protocol;

use super::super::Finding;
use super::stack::{Entry, Line, MODULE};

/// The protocols whose clients send one secret.
pub fn is_single_secret(protocol: Protocol) -> bool {
    matches!(
        protocol,
        Protocol::Ftp | Protocol::Ftps | Protocol::Http | Protocol::Https | Protocol::Webdav
    )
}

/// The documented stack, for the fixes.
const STACK: &str = "`auth required pam_otp_email.so split`, `auth requisite pam_unix.so use_first_pass`, `auth required pam_otp_email.so` (as in /usr/share/doc/pam-otp-email/examples/pam.d/vsftpd)";

/// Findings for a service speaking the single-secret `protocol` whose stack reaches the module.
pub fn judge(service: &str, protocol: Protocol, lines: &[Line]) -> Vec<Finding> {
    let Some(first) = lines.iter().position(Line::is_ours) else {
        return Vec::new();
    };
    let place = lines[first].place();
    if !lines[first].is_split() {
        let replace = match &lines[first].include {
            Some(file) => format!("`@include {file}` (line {})", lines[first].number),
            None => format!("line {}", lines[first].number),
        };
        return vec![Finding::problem(
            "pam",
            format!(
                "{service} speaks {protocol}, whose clients send one secret and cannot answer a second prompt, but reaches {MODULE} without `split` ({place}): the client answers the code prompt with the password, so every login fails"
            ),
            format!(
                "in /etc/pam.d/{service}, replace {replace} with the single-secret stack: {STACK}"
            ),
        )];
    }
    if let Some(early) = lines[..first].iter().find(|l| l.is_password()) {
        return vec![Finding::problem(
            "pam",
            format!(
                "{service}: a password module ({}) comes before {MODULE} split ({place}): it checks the password and code together, so a login with the code always fails",
                early.place()
            ),
            format!("in /etc/pam.d/{service}, keep only the single-secret stack: {STACK}"),
        )];
    }
    let password = lines[first..].iter().find(|l| l.is_password());
    let last = password.and_then(|p| {
        lines
            .iter()
            .find(|l| l.number > p.number && l.is_ours() && !l.is_split())
    });
    let (Some(password), Some(last)) = (password, last) else {
        return vec![Finding::problem(
            "pam",
            format!(
                "{service}: {MODULE} split ({place}) is not followed by a password module and then {MODULE} without split: the password part is never checked, or the code part never"
            ),
            format!("in /etc/pam.d/{service}, use the single-secret stack: {STACK}"),
        )];
    };
    let (module, control) = match &password.entry {
        Entry::Password { module, control } => (module.as_str(), control.as_str()),
        _ => ("the password module", ""),
    };
    if control != "requisite" {
        return vec![Finding::problem(
            "pam",
            format!(
                "{service}: {module} ({}) is `{control}`, not `requisite`: a wrong password still reaches {MODULE} ({}), so anyone who knows a user name can make otpd mail that user codes",
                password.place(),
                last.place()
            ),
            format!(
                "make {} `auth requisite {module} use_first_pass`",
                password.place()
            ),
        )];
    }
    vec![Finding::ok(
        "pam",
        format!(
            "{service} ({protocol}, one secret): {MODULE} split ({place}), {module} requisite ({}), {MODULE} ({})",
            password.place(),
            last.place()
        ),
    )]
}
