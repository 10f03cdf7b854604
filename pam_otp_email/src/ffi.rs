//! The module's only unsafe code: what pam-bindings does not wrap safely.
//!
//! - `pam_syslog`, which pam-bindings does not wrap at all;
//! - `pam_getenv`, likewise, to read `SSH_AUTH_INFO_0` from the PAM environment;
//! - `pam_set_item(PAM_AUTHTOK)`, because pam-bindings' `AuthTok` item has no public constructor;
//! - reading the stash back with `get_data`, which is unsafe because libpam cannot tell which
//!   type was stored. The key is private to this file and [`store_stash`] is the only code that
//!   stores under it, always with the one type [`Stored`].
//!
//! Everything else reaches libpam through pam-bindings' safe `PamHandle` methods.

use std::ffi::{CStr, CString, c_char, c_int, c_void};

use pam::constants::PamResultCode;
use pam::items::ItemType;
use pam::module::PamHandle;
use zeroize::Zeroizing;

use crate::flow::{LogLevel, Stash};

#[link(name = "pam")]
unsafe extern "C" {
    /// `void pam_syslog(const pam_handle_t *pamh, int priority, const char *fmt, ...);` from
    /// `<security/pam_ext.h>`: logs with the service and module name as prefix, to LOG_AUTHPRIV
    /// unless `priority` names a facility.
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);

    /// `int pam_set_item(pam_handle_t *pamh, int item_type, const void *item);` from
    /// `<security/pam_modules.h>`. For string items libpam stores its own copy (and wipes the
    /// old PAM_AUTHTOK before freeing it).
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;

    /// `const char *pam_getenv(pam_handle_t *pamh, const char *name);` from
    /// `<security/pam_appl.h>`: the value of `name` in the PAM environment (not the process's),
    /// or NULL. The pointer is libpam's, valid until the PAM environment changes.
    fn pam_getenv(pamh: *mut PamHandle, name: *const c_char) -> *const c_char;
}

/// The module data key of the stash. The version is part of it so that two different builds
/// of the module in one stack never read each other's data as their own type.
const STASH_KEY: &str = concat!("pam_otp_email.secret.v", env!("CARGO_PKG_VERSION"));

/// The one type ever stored under [`STASH_KEY`]; `None` is a cleared stash (pam-bindings has
/// no way to remove module data, so clearing stores `None` in its place).
type Stored = Option<Stash>;

/// Writes `message` to syslog through libpam. The text is passed as the argument of a fixed
/// `%s` format, so a `%` in a user name cannot be read as a conversion.
pub fn syslog(pamh: &PamHandle, level: LogLevel, message: &str) {
    let priority = match level {
        LogLevel::Error => libc::LOG_ERR,
        LogLevel::Notice => libc::LOG_NOTICE,
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

/// The variable `name` of the PAM environment (`pam_getenv`), where sshd with `ExposeAuthInfo
/// yes` puts `SSH_AUTH_INFO_0`. Never the process environment, which a client's `SetEnv` may
/// fill. A value that is not UTF-8 counts as absent.
pub fn pam_env(pamh: &PamHandle, name: &CStr) -> Option<String> {
    // SAFETY: `pamh` is the live handle of this hook call; libpam's pam_getenv only reads the
    // handle (its prototype lacks `const` for history's sake), so passing a pointer derived from
    // a shared reference is sound. `name` is a NUL-terminated string alive for the call.
    let value = unsafe { pam_getenv(std::ptr::from_ref(pamh).cast_mut(), name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: non-null, so it points to a NUL-terminated string in libpam's environment list,
    // which nothing changes before this copy is made (the handle is borrowed for the call).
    let text = unsafe { CStr::from_ptr(value) };
    text.to_str().ok().map(str::to_owned)
}

/// Sets PAM_AUTHTOK to `secret`, for a password module later in the stack. Our copy of the
/// NUL-terminated string is wiped when this returns. Errors are libpam's return code;
/// PAM_BUF_ERR for a secret with a NUL byte, which no C string could carry.
pub fn set_authtok(pamh: &mut PamHandle, secret: &[u8]) -> Result<(), c_int> {
    if secret.contains(&0) {
        return Err(PamResultCode::PAM_BUF_ERR as c_int);
    }
    // Capacity for the NUL up front, so the pushes never reallocate and leave an unwiped copy.
    let mut text = Zeroizing::new(Vec::with_capacity(secret.len() + 1));
    text.extend_from_slice(secret);
    text.push(0);
    // SAFETY: `pamh` is the live handle of this hook call, borrowed mutably so nothing else
    // uses it meanwhile. `text` is NUL-terminated (and has no other NUL), alive for the call;
    // libpam copies a string item before returning and keeps no pointer to ours.
    let code = unsafe { pam_set_item(pamh, ItemType::AuthTok as c_int, text.as_ptr().cast()) };
    if code == PamResultCode::PAM_SUCCESS as c_int {
        Ok(())
    } else {
        Err(code)
    }
}

/// Stores `stash` (or `None` to clear it) as module data of this transaction. libpam frees it,
/// wiping the code, at `pam_end` or when it is replaced.
pub fn store_stash(pamh: &mut PamHandle, stash: Stored) -> Result<(), PamResultCode> {
    pamh.set_data::<Stored>(STASH_KEY, Box::new(stash))
}

/// A copy of the stash, if one is stored and not cleared.
pub fn stashed(pamh: &PamHandle) -> Option<Stash> {
    // SAFETY: data under STASH_KEY is only ever stored by `store_stash` above, always as a
    // `Box<Stored>`: the key is private to this file and carries the crate version, and every
    // line of this module in a stack runs the same library. So the pointer libpam returns is a
    // live `Stored`, owned by libpam until replaced or `pam_end`; it is cloned here before
    // anything can replace it.
    let stored = unsafe { pamh.get_data::<Stored>(STASH_KEY) }.ok()?;
    stored.clone()
}

/// Tells syslog that a panic was caught (the hook has no PAM handle, so plain syslog(3)).
pub fn syslog_panic() {
    // SAFETY: the format is a static NUL-terminated "%s" and its one argument a static
    // NUL-terminated string; syslog(3) keeps neither pointer after it returns.
    unsafe {
        libc::syslog(
            libc::LOG_AUTHPRIV | libc::LOG_ERR,
            c"%s".as_ptr(),
            c"pam_otp_email: internal error caught; the login was refused (PAM_ABORT)".as_ptr(),
        )
    }
}
