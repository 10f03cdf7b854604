//! This machine's name, as otpd names its host: to a relay's main otpd, in its mail, and in
//! what a store migration keeps of a host's state.

/// The kernel's host name; `localhost` when it has none in UTF-8.
pub fn this_machine() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}
