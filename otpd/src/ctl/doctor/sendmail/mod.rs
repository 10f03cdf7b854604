//! The MTA behind `sendmail_path`, checked for the two ways Debian's MTAs and otpd's hardened
//! service get in each other's way (issue #14), both found only by sending through them:
//!
//! - Postfix's `sendmail` hands mail to `postdrop`, which writes the queue through its setgid
//!   bit. Under no_new_privs (which otpd.service sets, and which a dozen of its other settings
//!   imply) setgid has no effect: postdrop retries, and every code mail waits out the deadline.
//! - Exim keeps the envelope sender given with `-f` only for trusted callers. For otpd's user it
//!   sends from `otpd@host` instead and adds a `Sender:` header to every code mail.
//!
//! Both fixes start with the one we recommend: hand the mail to the same MTA over SMTP on the
//! loopback, which needs no privileges and no trust.

mod host;
mod unit;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use host::{Host, System};
use unit::{IMPLY_NO_NEW_PRIVS, NoNewPrivs, Service};

use super::Finding;

/// The check's name in findings, shared with the other mail checks.
const CHECK: &str = "mail";

/// Where Postfix keeps its commands when `postconf` cannot say.
const POSTFIX_COMMANDS: &str = "/usr/sbin";

/// The setgid bit of a file mode.
const SETGID: u32 = 0o2000;

/// The config lines that send through the local MTA over SMTP instead, the fix we recommend.
const SMTP_ON_LOOPBACK: &str = "[[mail.servers]] with name = \"local\", host = \"127.0.0.1\", port = 25, security = \"none\" (the MTA listens there by default; no sendmail_path needed)";

/// Whose `sendmail` it is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mta {
    /// Postfix, with its `postdrop` and that file's mode.
    Postfix { postdrop: PathBuf, mode: u32 },
    /// Exim, and the program that answers `-bP`.
    Exim { binary: String },
    /// Something else (msmtp, nullmailer, a script): nothing known to check.
    Other,
}

/// Checks the MTA behind `path` against otpd's service; `from` is `[mail] from`.
pub fn check(path: &Path, from: &str, host: &dyn Host) -> Vec<Finding> {
    match identify(path, host) {
        Mta::Postfix { postdrop, mode } => {
            let service = unit::service(host);
            vec![postfix(path, &postdrop, mode, host, service.as_ref())]
        }
        Mta::Exim { binary } => {
            let service = unit::service(host);
            vec![exim(path, &binary, from, host, service.as_ref())]
        }
        Mta::Other => Vec::new(),
    }
}

/// Exim when the program is (a link to) `exim*`; Postfix when it is a `sendmail*` and Postfix's
/// `postdrop` exists; Exim again when it is a `sendmail*` and `exim4 -bV` answers.
fn identify(path: &Path, host: &dyn Host) -> Mta {
    let resolved = host.resolve(path).unwrap_or_else(|| path.to_path_buf());
    let name = resolved
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name.starts_with("exim") {
        return Mta::Exim {
            binary: resolved.display().to_string(),
        };
    }
    if !name.starts_with("sendmail") {
        return Mta::Other;
    }
    let commands = host
        .run("postconf", &["-h", "command_directory"])
        .map(|dir| dir.trim().to_string())
        .filter(|dir| !dir.is_empty())
        .unwrap_or_else(|| POSTFIX_COMMANDS.to_string());
    let postdrop = Path::new(&commands).join("postdrop");
    if let Some(mode) = host.mode(&postdrop) {
        return Mta::Postfix { postdrop, mode };
    }
    if host.run("exim4", &["-bV"]).is_some() {
        return Mta::Exim {
            binary: "exim4".into(),
        };
    }
    Mta::Other
}

fn postfix(
    path: &Path,
    postdrop: &Path,
    mode: u32,
    host: &dyn Host,
    service: Option<&Service>,
) -> Finding {
    let (path, postdrop) = (path.display(), postdrop.display());
    if mode & SETGID == 0 {
        return Finding::ok(
            CHECK,
            format!(
                "{path} is Postfix's; {postdrop} is not setgid, so no_new_privs cannot stop it"
            ),
        );
    }
    let why = match unit::no_new_privs(host, service) {
        NoNewPrivs::Running { pid, set: true } => {
            format!("the running otpd (pid {pid}) has the no_new_privs flag")
        }
        NoNewPrivs::Unit { source, because } if !because.is_empty() => {
            format!("{source} sets {}", because.join(", "))
        }
        NoNewPrivs::Running { .. } | NoNewPrivs::Unit { .. } => {
            return Finding::ok(
                CHECK,
                format!(
                    "{path} is Postfix's, and otpd runs without no_new_privs, so setgid {postdrop} can queue its mail"
                ),
            );
        }
        NoNewPrivs::Unknown => {
            return Finding::skipped(
                CHECK,
                format!(
                    "{path} is Postfix's, with setgid {postdrop}; no {} is installed, so doctor cannot tell whether otpd runs with no_new_privs, under which postdrop cannot queue mail",
                    unit::UNIT
                ),
            );
        }
    };
    Finding::problem(
        CHECK,
        format!(
            "{path} is Postfix's: it hands each mail to {postdrop}, which needs its setgid bit, and {why}, under which setgid has no effect: postdrop cannot write the queue and keeps retrying, so every code mail waits out total_timeout and fails"
        ),
        format!(
            "recommended: send through Postfix over SMTP instead: add {SMTP_ON_LOOPBACK} and restart otpd. Keeping sendmail takes a drop-in (systemctl edit otpd) with NoNewPrivileges=no, every setting that implies it emptied or off ({}=) and ReadWritePaths=/var/spool/postfix/maildrop: that gives up most of otpd's sandbox for one setgid program",
            IMPLY_NO_NEW_PRIVS.join("=, ")
        ),
    )
}

fn exim(
    path: &Path,
    binary: &str,
    from: &str,
    host: &dyn Host,
    service: Option<&Service>,
) -> Finding {
    let path = path.display();
    let user = service.map_or(unit::DEFAULT_USER, Service::user);
    let Some(options) = host.run(binary, &["-bP", "trusted_users", "trusted_groups"]) else {
        return Finding::skipped(
            CHECK,
            format!(
                "{path} is Exim's, but `{binary} -bP trusted_users trusted_groups` failed, so doctor cannot tell whether Exim trusts otpd's user {user} (run doctor as root)"
            ),
        );
    };
    if exim_list(&options, "trusted_users")
        .iter()
        .any(|u| u == user)
    {
        return Finding::ok(
            CHECK,
            format!(
                "{path} is Exim's, and it trusts otpd's user {user} (trusted_users), so it keeps the envelope sender {from}"
            ),
        );
    }
    let groups = host.groups_of(user);
    if let Some(group) = exim_list(&options, "trusted_groups")
        .into_iter()
        .find(|g| groups.contains(g))
    {
        return Finding::ok(
            CHECK,
            format!(
                "{path} is Exim's, and it trusts otpd's user {user} (trusted_groups: {group}), so it keeps the envelope sender {from}"
            ),
        );
    }
    Finding::warning(
        CHECK,
        format!(
            "{path} is Exim's, and otpd's user {user} is in neither trusted_users nor trusted_groups: Exim ignores `-f {from}`, sends from {user}@this host (so bounces and SPF checks use that address) and adds `Sender: {user}@...` to every code mail"
        ),
        format!(
            "recommended: send through Exim over SMTP instead: add {SMTP_ON_LOOPBACK} and restart otpd. Or make Exim trust {user}: on Debian put `MAIN_TRUSTED_USERS = uucp : {user}` in /etc/exim4/conf.d/main/000_localmacros (split configuration) or /etc/exim4/exim4.conf.localmacros, then run update-exim4.conf and systemctl restart exim4"
        ),
    )
}

/// The items of Exim's list option `name` in `exim -bP` output (`name = a : b`), honouring a
/// `<;` separator change.
fn exim_list(options: &str, name: &str) -> Vec<String> {
    let Some(value) = options.lines().find_map(|line| {
        line.split_once('=')
            .filter(|(key, _)| key.trim() == name)
            .map(|(_, value)| value.trim())
    }) else {
        return Vec::new();
    };
    let (separator, items) = match value.strip_prefix('<').and_then(|v| {
        let mut chars = v.chars();
        chars.next().map(|sep| (sep, chars.as_str()))
    }) {
        Some((sep, rest)) => (sep, rest),
        None => (':', value),
    };
    items
        .split(separator)
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}
