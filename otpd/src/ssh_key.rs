//! SSH public keys as sshd reports them in `SSH_AUTH_INFO_0` (`TYPE BASE64`), and their
//! fingerprints as `ssh-keygen -lf` prints them, for `[[exemptions]]` (issue #16).
//!
//! The module sends the raw key lines and otpd computes the fingerprints, so the one place that
//! decides what a fingerprint is lives beside the one place that compares them.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest, Sha256};

/// The `SHA256:...` fingerprint of a `TYPE BASE64` key line: `SHA256:` and the unpadded base64
/// of SHA-256 over the key blob. `None` when the line is not a key: no blob, bad base64, or a
/// blob whose own type name differs from `TYPE` (sshd never sends such a line).
pub fn fingerprint(line: &str) -> Option<String> {
    let mut fields = line.split_ascii_whitespace();
    let kind = fields.next()?;
    let blob = STANDARD.decode(fields.next()?).ok()?;
    if blob_type(&blob)? != kind.as_bytes() {
        return None;
    }
    Some(format!(
        "SHA256:{}",
        STANDARD_NO_PAD.encode(Sha256::digest(&blob))
    ))
}

/// The type name a key blob starts with: an SSH `string` (u32 big-endian length, bytes).
fn blob_type(blob: &[u8]) -> Option<&[u8]> {
    let len_bytes: [u8; 4] = blob.get(..4)?.try_into().ok()?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).ok()?;
    blob.get(4..4usize.checked_add(len)?)
}

/// The fingerprints of the key lines that are keys; the others are dropped.
pub fn fingerprints(lines: &[String]) -> Vec<String> {
    lines.iter().filter_map(|l| fingerprint(l)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Makes a key with the real ssh-keygen and asks it for the fingerprint.
    fn keygen(kind: &str) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-C", "test comment", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen runs (openssh-client)");
        assert!(made.success());
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let out = Command::new("ssh-keygen")
            .args(["-E", "sha256", "-lf"])
            .arg(key.with_extension("pub"))
            .output()
            .unwrap();
        assert!(out.status.success());
        // "256 SHA256:... test comment (ED25519)"
        let printed = String::from_utf8(out.stdout).unwrap();
        let fp = printed.split_whitespace().nth(1).unwrap().to_string();
        (public.trim().to_string(), fp)
    }

    #[test]
    fn fingerprints_are_those_ssh_keygen_prints() {
        for kind in ["ed25519", "ecdsa", "rsa"] {
            let (public, expected) = keygen(kind);
            let line: Vec<&str> = public.split_whitespace().take(2).collect();
            assert_eq!(
                fingerprint(&line.join(" ")).as_deref(),
                Some(expected.as_str()),
                "{kind}"
            );
            // The comment after the blob changes nothing.
            assert_eq!(
                fingerprint(&public).as_deref(),
                Some(expected.as_str()),
                "{kind}"
            );
        }
    }

    #[test]
    fn a_line_that_is_not_a_key_has_no_fingerprint() {
        let (public, _) = keygen("ed25519");
        let blob = public.split_whitespace().nth(1).unwrap();
        for bad in [
            String::new(),
            "ssh-ed25519".to_string(),
            "ssh-ed25519 !!!notbase64".to_string(),
            format!("ssh-rsa {blob}"),
            "ssh-ed25519 AAAA".to_string(),
        ] {
            assert_eq!(fingerprint(&bad), None, "{bad:?}");
        }
        assert_eq!(fingerprints(&["password".into(), public.clone()]).len(), 1);
    }
}
