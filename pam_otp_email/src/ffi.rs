//! The module's only unsafe code: `pam_syslog`, which pam-bindings does not wrap.
//!
//! Everything else reaches libpam through pam-bindings' safe `PamHandle` methods.

use std::ffi::{CString, c_char, c_int};

use pam::module::PamHandle;

use crate::flow::LogLevel;

#[link(name = "pam")]
unsafe extern "C" {
    /// `void pam_syslog(const pam_handle_t *pamh, int priority, const char *fmt, ...);` from
    /// `<security/pam_ext.h>`: logs with the service and module name as prefix, to LOG_AUTHPRIV
    /// unless `priority` names a facility.
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
}

/// Writes `message` to syslog through libpam. The text is passed as the argument of a fixed
/// `%s` format, so a `%` in a user name cannot be read as a conversion.
pub fn syslog(pamh: &PamHandle, level: LogLevel, message: &str) {
    let priority = match level {
        LogLevel::Error => libc::LOG_ERR,
        LogLevel::Debug => libc::LOG_DEBUG,
    };
    // Callers escape their text already; a NUL would only cut the line short, so show it instead.
    let Ok(text) = CString::new(message.replace('\0', "\\x00")) else {
        return;
    };
    // SAFETY: `pamh` is a reference to the live handle libpam passed to the hook, so it is valid
    // for the call. `fmt` is a NUL-terminated static "%s" and the single variadic argument is a
    // NUL-terminated C string that outlives the call, matching that one conversion. pam_syslog
    // keeps neither pointer after it returns.
    unsafe { pam_syslog(pamh, priority, c"%s".as_ptr(), text.as_ptr()) }
}
