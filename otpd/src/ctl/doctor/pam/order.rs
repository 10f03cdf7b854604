//! Where the module sits relative to the password module, and with which control, in a service
//! whose client can answer a second prompt (sshd, su, login).
//!
//! The module belongs after the password check: placed before it, anyone who knows a user
//! name can make otpd mail that user codes, and learns whether the name exists. `optional`
//! makes a wrong code harmless to the login, which turns the second factor off.

use super::super::Finding;
use super::stack::{Entry, Line, MODULE};

/// Findings for a service file that names the module itself.
pub fn judge(service: &str, lines: &[Line]) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some((ours_at, control)) = lines.iter().find_map(|l| match &l.entry {
        Entry::Ours {
            control,
            split: false,
            ..
        } if l.include.is_none() => Some((l.number, control.clone())),
        _ => None,
    }) else {
        return out;
    };
    let password_before = lines.iter().find(|l| l.number < ours_at && l.is_password());
    let password_after = lines.iter().find(|l| l.number > ours_at && l.is_password());
    match (password_before, password_after) {
        (Some(before), _) => out.push(Finding::ok(
            "pam",
            format!(
                "{service}: {MODULE} (line {ours_at}, {control}) comes after the password module ({})",
                password_place(before)
            ),
        )),
        (None, Some(after)) => out.push(Finding::problem(
            "pam",
            format!(
                "{service}: {MODULE} (line {ours_at}) comes before the password module ({}): anyone who knows a user name can make otpd mail that user codes",
                password_place(after)
            ),
            format!("move line {ours_at} below line {} in the {service} file", after.number),
        )),
        (None, None) => out.push(Finding::warning(
            "pam",
            format!(
                "{service}: no password module comes before {MODULE} (line {ours_at}); fine for SSH keys plus a code, but otherwise the code is the only factor"
            ),
            format!("put `@include common-auth` (or your password module) before line {ours_at}, unless keys are the first factor"),
        )),
    }
    if control == "optional" || control == "sufficient" {
        out.push(Finding::problem(
            "pam",
            format!(
                "{service}: {MODULE} is `{control}` (line {ours_at}): {}",
                if control == "optional" {
                    "a wrong code does not stop the login"
                } else {
                    "a right code alone ends the stack, skipping what follows"
                }
            ),
            format!(
                "use `[success=ok ignore=ignore default=die]` (or `required`) on line {ours_at}"
            ),
        ));
    }
    out
}

/// `pam_unix.so, line N`, or `@include common-auth, line N` for one reached through a file.
fn password_place(line: &Line) -> String {
    match (&line.include, &line.entry) {
        (None, Entry::Password { module, .. }) => format!("{module}, line {}", line.number),
        _ => line.place(),
    }
}
