//! Login protocols, and which PAM service names speak them.
//!
//! The protocol list mirrors a file-transfer server's `twofactor_secret_auto_otp_enable_protocols`
//! (ftp, ftps, sftp, http, https, webdav) plus ssh and local console logins. It is a closed set on
//! purpose: a typo such as `shh` in `[protocols] enabled` must be a config error, not a protocol
//! that silently requires nothing.

use serde::{Deserialize, Serialize};

/// A protocol a login arrives by; `[protocols] enabled` says which of them require the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Interactive SSH logins (sshd).
    Ssh,
    /// SFTP sessions; sshd cannot tell them apart, so a second sshd or `protocol=sftp` does.
    Sftp,
    /// Plain FTP.
    Ftp,
    /// FTP over TLS.
    Ftps,
    /// HTTP Basic authentication.
    Http,
    /// HTTP Basic authentication over TLS.
    Https,
    /// WebDAV shares.
    Webdav,
    /// Local logins: login, su, sudo and display managers.
    Console,
}

impl Protocol {
    /// Every protocol, in the order the docs list them.
    pub const ALL: [Protocol; 8] = [
        Protocol::Ssh,
        Protocol::Sftp,
        Protocol::Ftp,
        Protocol::Ftps,
        Protocol::Http,
        Protocol::Https,
        Protocol::Webdav,
        Protocol::Console,
    ];

    /// The protocols that require the code when `[protocols] enabled` is not set: every network
    /// protocol. Console logins are left to the admin to opt into.
    pub const DEFAULT_ENABLED: [Protocol; 7] = [
        Protocol::Ssh,
        Protocol::Sftp,
        Protocol::Ftp,
        Protocol::Ftps,
        Protocol::Http,
        Protocol::Https,
        Protocol::Webdav,
    ];

    /// The lower-case name used in the config, module arguments, logs and audit rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Ssh => "ssh",
            Protocol::Sftp => "sftp",
            Protocol::Ftp => "ftp",
            Protocol::Ftps => "ftps",
            Protocol::Http => "http",
            Protocol::Https => "https",
            Protocol::Webdav => "webdav",
            Protocol::Console => "console",
        }
    }

    /// Parses a protocol name as written in config or a module argument.
    pub fn parse(name: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The PAM service names otpd knows without configuration; `[services]` adds to and overrides
/// these.
pub const DEFAULT_SERVICES: [(&str, Protocol); 12] = [
    ("sshd", Protocol::Ssh),
    ("sshd-sftp", Protocol::Sftp),
    ("vsftpd", Protocol::Ftp),
    ("proftpd", Protocol::Ftp),
    ("pure-ftpd", Protocol::Ftp),
    ("nginx", Protocol::Http),
    ("apache2", Protocol::Http),
    ("httpd", Protocol::Http),
    ("webdav", Protocol::Webdav),
    ("login", Protocol::Console),
    ("su", Protocol::Console),
    ("sudo", Protocol::Console),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Protocol::ALL {
            assert_eq!(Protocol::parse(p.as_str()), Some(p));
        }
        assert_eq!(Protocol::parse("shh"), None);
    }
}
