//! The PAM stacks the README documents, as service file text, built around our module's line.
//!
//! pam_unix gets `nodelay`: without it every failed password costs two seconds inside the server,
//! which would only slow the tests down. Nothing else differs from what an admin writes.

use std::path::Path;

use crate::paths;

/// The lines every stack ends with: the tests are about `auth`; the rest lets a login through.
const NON_AUTH: &str = "account required pam_permit.so\n\
                        session required pam_permit.so\n\
                        password required pam_deny.so\n";

/// Our module as the module part of a pam.d line: `<path> socket=<socket> <args>`.
pub fn otp(socket: &Path, args: &str) -> String {
    otp_from(&paths::module(), socket, args)
}

/// The same, with another build of the module (the panic-test variant).
pub fn otp_from(module: &Path, socket: &Path, args: &str) -> String {
    format!("{} socket={} {args}", module.display(), socket.display())
        .trim_end()
        .to_string()
}

/// Password then code (sshd keyboard-interactive, su, login): pam_unix asks for the password
/// and stops the stack when it is wrong, so a wrong password never mails a code.
pub fn password_then_code(otp: &str) -> String {
    format!("auth requisite pam_unix.so nodelay\nauth required {otp}\n{NON_AUTH}")
}

/// Key then code: sshd checked the key (`AuthenticationMethods publickey,keyboard-interactive`),
/// so the stack asks only for the code.
pub fn code_only(otp: &str) -> String {
    format!("auth required {otp}\n{NON_AUTH}")
}

/// Key then code where some logins need no code (an `[[exemptions]]` key, `mode = "off"`): our
/// module answers PAM_IGNORE for those, and pam_permit lets the key sshd already checked stand.
/// Safe only with `AuthenticationMethods publickey,keyboard-interactive:pam`, which runs this
/// stack after the key and never alone.
pub fn code_after_key(otp: &str) -> String {
    format!("auth required {otp}\nauth required pam_permit.so\n{NON_AUTH}")
}

/// Single-secret protocols (FTP, HTTP Basic, WebDAV): the first instance (`split`) reads the
/// secret and hands the password part on, pam_unix checks it, the second instance checks the
/// code part or, when there is none, mails a code and fails.
pub fn single_secret(otp: &str) -> String {
    format!(
        "auth required {otp} split\n\
         auth requisite pam_unix.so nodelay use_first_pass\n\
         auth required {otp}\n{NON_AUTH}"
    )
}

/// The password alone.
pub fn password_only() -> String {
    format!("auth required pam_unix.so nodelay\n{NON_AUTH}")
}

/// `line` (an `auth` control and module) runs only for `user`; everyone else skips it and goes
/// on to `rest`. Used to send one user through a faulty module while the same server keeps
/// serving everyone else.
pub fn only_for_user(user: &str, line: &str, rest: &str) -> String {
    // A jump counts as `ok`, so it is taken only on success: everyone but `user` succeeds here
    // and jumps over `line`; for `user` the check fails and is ignored.
    format!(
        "auth [success=1 default=ignore] pam_succeed_if.so quiet user != {user}\n{line}\n{rest}"
    )
}

/// Debian 12's own /etc/pam.d/vsftpd, as the vsftpd package installs it: the password through
/// common-auth, which under the otp-email profile also reaches the module (without `split`).
pub const DEBIAN_VSFTPD: &str = "# Standard behaviour for ftpd(8).\n\
auth\trequired\tpam_listfile.so item=user sense=deny file=/etc/ftpusers onerr=succeed\n\
\n\
# Note: vsftpd handles anonymous logins on its own. Do not enable pam_ftp.so.\n\
\n\
# Standard pam includes\n\
@include common-account\n\
@include common-session\n\
@include common-auth\n\
auth\trequired\tpam_shells.so\n";
