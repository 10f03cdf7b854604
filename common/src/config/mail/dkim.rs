//! `[mail.dkim]`: signing code mails so receiving servers can tell they are genuine and do not
//! file them as spam.

use std::path::PathBuf;

use toml::Spanned;

use super::super::address::is_dns_label;
use super::super::check;
use super::super::error::Invalid;
use super::super::raw::{RawDkim, Text};

/// Where the signature's public key is published (`SELECTOR._domainkey.DOMAIN`) and the
/// private key that makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimSettings {
    /// The selector: one or more DNS labels.
    pub selector: String,
    /// The signing domain (`d=`); usually the domain of `[mail] from`.
    pub domain: String,
    /// The private key: an RSA key in PKCS#1 PEM, or an Ed25519 key as base64 of its 32
    /// bytes. Read by otpd at start; it must be readable by otpd alone.
    pub key_file: PathBuf,
}

impl DkimSettings {
    /// Checks `[mail.dkim]`; every key is required.
    pub(in crate::config) fn from_raw(raw: &Spanned<RawDkim>) -> Result<DkimSettings, Invalid> {
        let dkim = raw.get_ref();
        let need = |value: Option<&Text>, key: &str, example: &str| {
            value.cloned().ok_or_else(|| {
                Invalid::new(raw.span(), format!("[mail.dkim] needs {key} = {example}"))
            })
        };
        let selector = need(dkim.selector.as_ref(), "selector", "\"NAME\"")?;
        let domain = need(dkim.domain.as_ref(), "domain", "\"example.com\"")?;
        let key_file = need(dkim.key_file.as_ref(), "key_file", "\"/etc/otpd/dkim.key\"")?;
        Ok(DkimSettings {
            selector: dns_name("selector", &selector, 1)?,
            domain: dns_name("domain", &domain, 2)?,
            key_file: check::absolute_path("key_file", &key_file)?,
        })
    }
}

/// At least `min_labels` DNS labels separated by dots.
fn dns_name(key: &str, value: &Text, min_labels: usize) -> Result<String, Invalid> {
    let name = value.get_ref();
    let labels = name.split('.').count();
    if name.len() <= 253 && labels >= min_labels && name.split('.').all(is_dns_label) {
        Ok(name.clone())
    } else {
        Err(Invalid::new(
            value.span(),
            format!(
                "{key} must be a DNS name of at least {min_labels} label(s) of letters, digits and '-', got {name:?}"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dkim(body: &str) -> Result<DkimSettings, Invalid> {
        #[derive(serde::Deserialize)]
        struct W {
            d: Spanned<RawDkim>,
        }
        let raw: W = toml::from_str(&format!("[d]\n{body}")).unwrap();
        DkimSettings::from_raw(&raw.d)
    }

    #[test]
    fn a_complete_section_is_accepted() {
        let d = dkim(
            "selector = \"otp2025\"\ndomain = \"example.com\"\nkey_file = \"/etc/otpd/dkim.key\"",
        )
        .unwrap();
        assert_eq!(d.selector, "otp2025");
        assert_eq!(d.domain, "example.com");
        assert_eq!(d.key_file, PathBuf::from("/etc/otpd/dkim.key"));
    }

    #[test]
    fn every_key_is_required_and_checked() {
        let e = dkim("domain = \"example.com\"\nkey_file = \"/k\"").unwrap_err();
        assert_eq!(e.message, "[mail.dkim] needs selector = \"NAME\"");
        assert!(dkim("selector = \"s\"\ndomain = \"com\"\nkey_file = \"/k\"").is_err());
        assert!(dkim("selector = \"a b\"\ndomain = \"example.com\"\nkey_file = \"/k\"").is_err());
        assert!(dkim("selector = \"s\"\ndomain = \"example.com\"\nkey_file = \"k\"").is_err());
    }
}
