//! The files a valid config names for the mailer (`password_file`, `ca_file`, the DKIM
//! `key_file`), the LDAP sources (`bind_password_file`, `ca_file`) and the webhook channels
//! (`credentials_file`, `ca_file`) and the relay (`client_key`, `key`, the certificates), checked where the daemon will read them, so that `otpd --check-config`, the
//! start and a reload refuse a FIFO, a device, a huge or a foreign file at the setting's
//! `FILE:LINE:COLUMN` instead of the mailer failing (or hanging) later without a position.
//!
//! Templates given as `@/path` are read while the config is parsed (they are needed then), through
//! the same [`admin_file::read`]. This pass is separate because `otpctl` loads the config as an
//! ordinary user, who may not read a secret that only otpd can.

use super::admin_file::{self, AdminFileKind};
use super::error::Invalid;
use super::raw::{RawConfig, Text};

/// Checks every file `raw` names for the LDAP sources and the mailer; the first bad one is the
/// error.
pub(super) fn check(raw: &RawConfig) -> Result<(), Invalid> {
    let ldap = raw.directory.iter().flat_map(|d| d.ldap.iter().flatten());
    for source in ldap {
        let source = source.get_ref();
        if let Some(file) = &source.bind_password_file {
            one("bind_password_file", file, AdminFileKind::Secret)?;
        }
        if let Some(file) = &source.ca_file {
            one("ca_file", file, AdminFileKind::CaBundle)?;
        }
    }
    let webhooks = raw.channels.iter().flat_map(|c| c.webhook.iter().flatten());
    for hook in webhooks {
        let hook = hook.get_ref();
        if let Some(file) = &hook.credentials_file {
            one("credentials_file", file, AdminFileKind::Secret)?;
        }
        if let Some(file) = &hook.ca_file {
            one("ca_file", file, AdminFileKind::CaBundle)?;
        }
    }
    if let Some(relay) = &raw.relay {
        let relay = relay.get_ref();
        let files = [
            ("client_key", &relay.client_key, AdminFileKind::Secret),
            ("client_cert", &relay.client_cert, AdminFileKind::CaBundle),
            ("ca_file", &relay.ca_file, AdminFileKind::CaBundle),
        ];
        for (key, file, kind) in files {
            if let Some(file) = file {
                one(key, file, kind)?;
            }
        }
    }
    if let Some(listener) = &raw.relay_listener {
        let listener = listener.get_ref();
        let files = [
            ("key", &listener.key, AdminFileKind::Secret),
            ("cert", &listener.cert, AdminFileKind::CaBundle),
            ("client_ca", &listener.client_ca, AdminFileKind::CaBundle),
        ];
        for (key, file, kind) in files {
            if let Some(file) = file {
                one(key, file, kind)?;
            }
        }
        for client in listener.clients.iter().flatten() {
            if let Some(file) = &client.get_ref().certificate {
                one("certificate", file, AdminFileKind::CaBundle)?;
            }
        }
    }
    let Some(mail) = &raw.mail else {
        return Ok(());
    };
    let mail = mail.get_ref();
    if let Some(key_file) = mail
        .dkim
        .as_ref()
        .and_then(|d| d.get_ref().key_file.as_ref())
    {
        one("key_file", key_file, AdminFileKind::Secret)?;
    }
    for server in mail.servers.iter().flat_map(|s| s.get_ref()) {
        let server = server.get_ref();
        if let Some(file) = &server.password_file {
            one("password_file", file, AdminFileKind::Secret)?;
        }
        if let Some(file) = &server.ca_file {
            one("ca_file", file, AdminFileKind::CaBundle)?;
        }
    }
    Ok(())
}

fn one(key: &str, value: &Text, kind: AdminFileKind) -> Result<(), Invalid> {
    admin_file::read(std::path::Path::new(value.get_ref()), kind)
        .map(drop)
        .map_err(|e| Invalid::new(value.span(), format!("{key} {e}")))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::super::Config;

    /// A config whose line 6 names `ca_file = PATH` and line 7 `password_file = SECRET`.
    fn config(dir: &Path, ca_file: &str, secret: &str) -> std::path::PathBuf {
        let text = format!(
            "[mail]\nfrom = \"otp@example.com\"\n[[mail.servers]]\nname = \"mx\"\nsecurity = \"tls\"\nca_file = \"{ca_file}\"\npassword_file = \"{secret}\"\nusername = \"u\"\nhost = \"mx.example.com\"\n"
        );
        let path = dir.join("otpd.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn good_secret(dir: &Path) -> String {
        let path = dir.join("pw");
        std::fs::write(&path, "pw\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.display().to_string()
    }

    #[test]
    fn a_device_as_ca_file_is_refused_at_its_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = config(dir.path(), "/dev/zero", &good_secret(dir.path()));
        let e = Config::load_with_files(&path).unwrap_err();
        let at = e.location().unwrap();
        assert_eq!((at.line, at.column), (6, 11), "{e}");
        assert!(
            e.to_string().contains("ca_file /dev/zero: is a device"),
            "{e}"
        );
        // Only the daemon's load reads these files; otpctl's does not.
        assert!(Config::load(&path).is_ok());
    }

    #[test]
    fn a_readable_password_file_is_refused_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o644)).unwrap();
        let secret = good_secret(dir.path());
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = config(dir.path(), &ca.display().to_string(), &secret);
        let e = Config::load_with_files(&path).unwrap_err();
        assert_eq!(e.location().unwrap().line, 7, "{e}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        Config::load_with_files(&path).unwrap();
    }

    #[test]
    fn a_readable_webhook_credentials_file_is_refused_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let secret = good_secret(dir.path());
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "[mail]\nfrom = \"otp@example.com\"\n[[channels.webhook]]\nname = \"sms\"\nendpoints = [\"https://gw.example/send\"]\nbody = \"B={{code}}\"\ncredentials_file = \"{secret}\"\n"
        );
        let path = dir.path().join("otpd.toml");
        std::fs::write(&path, text).unwrap();
        let e = Config::load_with_files(&path).unwrap_err();
        assert_eq!(e.location().unwrap().line, 7, "{e}");
        assert!(e.to_string().contains("credentials_file"), "{e}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        assert!(Config::load(&path).is_ok());
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        Config::load_with_files(&path).unwrap();
    }

    #[test]
    fn a_readable_ldap_bind_password_file_is_refused_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let secret = good_secret(dir.path());
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "[mail]\nfrom = \"otp@example.com\"\n[[directory.ldap]]\nname = \"corp\"\nurls = [\"ldaps://ldap.example.com\"]\nbase = \"dc=example,dc=com\"\nfilter = \"(uid={{user}})\"\nbind_dn = \"cn=otpd,dc=example,dc=com\"\nbind_password_file = \"{secret}\"\n"
        );
        let path = dir.path().join("otpd.toml");
        std::fs::write(&path, text).unwrap();
        let e = Config::load_with_files(&path).unwrap_err();
        assert_eq!(e.location().unwrap().line, 9, "{e}");
        assert!(e.to_string().contains("bind_password_file"), "{e}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        Config::load_with_files(&path).unwrap();
    }
}
