//! Keeps a panic in the module from printing into the host's stderr.
//!
//! pam-bindings catches every panic at the `extern "C"` boundary and answers PAM_ABORT, but
//! Rust's default panic hook still prints a message (and maybe a backtrace) to stderr first, and
//! the module must never write to the application's terminal or log. The hook set here is the
//! one of this module's own copy of the standard library (a cdylib links its own), so it changes
//! nothing for a Rust host program. It writes one line to syslog instead, without the panic's
//! text (which could carry user input).
//!
//! Builds with the `test-panic` feature keep the default hook, so the end-to-end tests can see
//! in the host's log that the deliberate fault really fired.

use std::sync::Once;

static INSTALL: Once = Once::new();

/// Installs the quiet hook once per process.
pub fn install() {
    if cfg!(feature = "test-panic") {
        return;
    }
    INSTALL.call_once(|| {
        std::panic::set_hook(Box::new(|_| crate::ffi::syslog_panic()));
    });
}
