//! DKIM signing (`[mail.dkim]`), so receiving servers can check a code mail really comes from
//! the sender's domain and do not file it as spam.

use common::config::DkimSettings;
use lettre::Message;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;

use super::secret_file::{self, SecretFileError};

/// Headers every code mail has, all signed so none can be changed or added in transit.
/// (lettre writes a multipart Content-Type with the body, after signing, so it cannot be
/// among them; the signed body hash covers the parts and their boundaries.)
const SIGNED_HEADERS: [&str; 7] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Auto-Submitted",
];

/// A loaded signing key and where its public half is published.
pub struct Dkim {
    config: DkimConfig,
}

impl std::fmt::Debug for Dkim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dkim([key redacted])")
    }
}

/// Why DKIM could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    /// The key file is unsafe or unreadable.
    #[error("DKIM key_file {0}")]
    File(#[from] SecretFileError),
    /// The key is not in a form lettre signs with.
    #[error("DKIM key_file {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl Dkim {
    /// Loads the key named in `settings`. `sign_reply_to` adds Reply-To to the signed headers
    /// (only when the mails carry one).
    pub fn load(settings: &DkimSettings, sign_reply_to: bool) -> Result<Dkim, DkimError> {
        let key = secret_file::read_private(&settings.key_file)?;
        let path = settings.key_file.display().to_string();
        let text = key.expose().trim();
        let algorithm = if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
            DkimSigningAlgorithm::Rsa
        } else if text.contains("-----BEGIN") {
            return Err(DkimError::Key {
                path,
                reason: "not a PKCS#1 RSA key (\"BEGIN RSA PRIVATE KEY\"); convert a PKCS#8 key with: openssl rsa -in KEY -traditional -out KEY.rsa".into(),
            });
        } else {
            DkimSigningAlgorithm::Ed25519
        };
        let signing_key = DkimSigningKey::new(text, algorithm).map_err(|e| DkimError::Key {
            path,
            reason: format!("cannot load the key: {e}"),
        })?;
        let mut headers: Vec<HeaderName> = SIGNED_HEADERS
            .iter()
            .map(|h| HeaderName::new_from_ascii_str(h))
            .collect();
        if sign_reply_to {
            headers.push(HeaderName::new_from_ascii_str("Reply-To"));
        }
        // Relaxed canonicalization survives the re-folding and whitespace changes relays make.
        let canonicalization = DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        };
        Ok(Dkim {
            config: DkimConfig::new(
                settings.selector.clone(),
                settings.domain.clone(),
                signing_key,
                headers,
                canonicalization,
            ),
        })
    }

    /// Adds the DKIM-Signature header to `message`.
    pub fn sign(&self, message: &mut Message) {
        message.sign(&self.config);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn settings(key: &str) -> (tempfile::TempDir, DkimSettings) {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("dkim.key");
        std::fs::write(&key_file, key).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = DkimSettings {
            selector: "s1".into(),
            domain: "example.com".into(),
            key_file,
        };
        (dir, s)
    }

    #[test]
    fn an_ed25519_key_signs_with_the_selector_and_domain() {
        // 32 zero bytes in base64: a valid (if silly) Ed25519 seed.
        let (_dir, s) = settings("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
        let dkim = Dkim::load(&s, false).unwrap();
        let mut m = Message::builder()
            .from("otp@example.com".parse().unwrap())
            .to("a@example.com".parse().unwrap())
            .subject("x")
            .body(String::from("y"))
            .unwrap();
        dkim.sign(&mut m);
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(
            raw.contains("DKIM-Signature: v=1; a=ed25519-sha256;"),
            "{raw}"
        );
        assert!(raw.contains("d=example.com;"), "{raw}");
        assert!(raw.contains("s=s1;"), "{raw}");
        assert!(format!("{dkim:?}").contains("redacted"));
    }

    #[test]
    fn a_pkcs8_key_is_refused_with_the_command_that_converts_it() {
        let (_dir, s) = settings("-----BEGIN PRIVATE KEY-----\nMC4=\n-----END PRIVATE KEY-----\n");
        let e = Dkim::load(&s, false).unwrap_err().to_string();
        assert!(e.contains("openssl rsa -in KEY -traditional"), "{e}");
    }

    #[test]
    fn a_readable_or_broken_key_is_refused() {
        let (_dir, s) = settings("not base64 at all");
        assert!(Dkim::load(&s, false).is_err());
        let (_dir, s) = settings("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        std::fs::set_permissions(&s.key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Dkim::load(&s, false).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        let missing = DkimSettings {
            key_file: PathBuf::from("/nonexistent/dkim.key"),
            ..s
        };
        assert!(Dkim::load(&missing, false).is_err());
    }
}
