//! A safe driver for the system libpam, so tests run real PAM transactions that load the real
//! module, the way sshd would, from a service directory of their own.
//!
//! `pam_start_confdir` (Linux-PAM 1.4 and later) reads `<confdir>/<service>` instead of
//! /etc/pam.d, so the tests never touch the system's PAM configuration. The conversation is a
//! Rust closure; the C trampoline that libpam calls catches any panic in it (a panic must not
//! unwind through libpam), answers PAM_CONV_ERR, and [`Transaction::authenticate`] resumes the
//! panic once libpam has returned, so an assertion inside a conversation still fails its test.

use std::any::Any;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::Path;
use std::ptr::{self, NonNull};

/// Success.
pub const PAM_SUCCESS: i32 = 0;
/// A module in the stack is misconfigured (e.g. bad module arguments).
pub const PAM_SERVICE_ERR: i32 = 3;
/// Out of memory, or a string that cannot be passed to C.
pub const PAM_BUF_ERR: i32 = 5;
/// Permission denied.
pub const PAM_PERM_DENIED: i32 = 6;
/// Authentication failed.
pub const PAM_AUTH_ERR: i32 = 7;
/// The authentication service could not be reached (e.g. otpd is down).
pub const PAM_AUTHINFO_UNAVAIL: i32 = 9;
/// The user is not known.
pub const PAM_USER_UNKNOWN: i32 = 10;
/// Too many tries: locked out.
pub const PAM_MAXTRIES: i32 = 11;
/// The conversation failed.
pub const PAM_CONV_ERR: i32 = 19;
/// The module has no opinion on this login.
pub const PAM_IGNORE: i32 = 25;
/// Critical error, e.g. a module panicked and pam-bindings caught it.
pub const PAM_ABORT: i32 = 26;
/// A bad item was passed to `pam_set_item`.
pub const PAM_BAD_ITEM: i32 = 29;

/// `PAM_TTY` in `pam_set_item`.
const PAM_TTY: c_int = 3;
/// `PAM_RHOST` in `pam_set_item`.
const PAM_RHOST: c_int = 4;
/// The most messages libpam passes in one conversation call.
const PAM_MAX_NUM_MSG: c_int = 32;

/// Every PAM return code by value, for [`code_name`].
const CODE_NAMES: [&str; 32] = [
    "PAM_SUCCESS",
    "PAM_OPEN_ERR",
    "PAM_SYMBOL_ERR",
    "PAM_SERVICE_ERR",
    "PAM_SYSTEM_ERR",
    "PAM_BUF_ERR",
    "PAM_PERM_DENIED",
    "PAM_AUTH_ERR",
    "PAM_CRED_INSUFFICIENT",
    "PAM_AUTHINFO_UNAVAIL",
    "PAM_USER_UNKNOWN",
    "PAM_MAXTRIES",
    "PAM_NEW_AUTHTOK_REQD",
    "PAM_ACCT_EXPIRED",
    "PAM_SESSION_ERR",
    "PAM_CRED_UNAVAIL",
    "PAM_CRED_EXPIRED",
    "PAM_CRED_ERR",
    "PAM_NO_MODULE_DATA",
    "PAM_CONV_ERR",
    "PAM_AUTHTOK_ERR",
    "PAM_AUTHTOK_RECOVERY_ERR",
    "PAM_AUTHTOK_LOCK_BUSY",
    "PAM_AUTHTOK_DISABLE_AGING",
    "PAM_TRY_AGAIN",
    "PAM_IGNORE",
    "PAM_ABORT",
    "PAM_AUTHTOK_EXPIRED",
    "PAM_MODULE_UNKNOWN",
    "PAM_BAD_ITEM",
    "PAM_CONV_AGAIN",
    "PAM_INCOMPLETE",
];

/// The symbolic name of a PAM return code (`"PAM_AUTH_ERR"`), for assertions and messages that
/// read better than a number; `"PAM_UNKNOWN_CODE"` for a value libpam does not define.
pub fn code_name(code: i32) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|index| CODE_NAMES.get(index))
        .copied()
        .unwrap_or("PAM_UNKNOWN_CODE")
}

/// How a module wants a message shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStyle {
    /// A prompt whose answer is not echoed (passwords, codes).
    PromptEchoOff,
    /// A prompt whose answer is echoed.
    PromptEchoOn,
    /// An error to show; no answer.
    ErrorMsg,
    /// Information to show; no answer.
    TextInfo,
}

impl MessageStyle {
    fn from_raw(style: c_int) -> Option<MessageStyle> {
        match style {
            1 => Some(MessageStyle::PromptEchoOff),
            2 => Some(MessageStyle::PromptEchoOn),
            3 => Some(MessageStyle::ErrorMsg),
            4 => Some(MessageStyle::TextInfo),
            _ => None,
        }
    }

    /// Whether the module expects an answer.
    pub fn is_prompt(self) -> bool {
        matches!(
            self,
            MessageStyle::PromptEchoOff | MessageStyle::PromptEchoOn
        )
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// How to show it.
    pub style: MessageStyle,
    /// The text (lossily decoded: modules may send any bytes).
    pub text: String,
}

/// A libpam call that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PamError {
    /// The PAM return code.
    pub code: i32,
    /// libpam's description of it, or why the call could not be made.
    pub message: String,
}

impl std::fmt::Display for PamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            code_name(self.code),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for PamError {}

/// `pam_handle_t`, opaque.
#[repr(C)]
struct PamHandle {
    _private: [u8; 0],
}

/// `struct pam_message`.
#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

/// `struct pam_response`; libpam frees `resp` and the array with `free`.
#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

/// The C signature of a conversation function.
type ConvFn = extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

/// `struct pam_conv`.
#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_start_confdir(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_end(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_strerror(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
}

/// The conversation closure type.
type Conversation = Box<dyn FnMut(&Message) -> Option<String>>;

/// What the trampoline reaches through `appdata_ptr`.
struct ConvState {
    conversation: Conversation,
    /// A panic caught in the conversation, to be resumed by `authenticate`. Once set, the
    /// closure is not called again: it may be half-way through something.
    panic: Option<Box<dyn Any + Send>>,
}

/// One PAM transaction (`pam_start_confdir` .. `pam_end`).
pub struct Transaction {
    pamh: NonNull<PamHandle>,
    /// Owned here (from `Box::into_raw`) because libpam holds a pointer to it until `pam_end`;
    /// freed in `Drop` after that.
    state: NonNull<ConvState>,
    /// Kept alive as long as the handle, whatever libpam does with the pointer to it.
    _conv: Box<PamConv>,
    /// Passed to `pam_end`, which hands it to the modules' cleanup functions.
    last_status: c_int,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("last_status", &code_name(self.last_status))
            .finish_non_exhaustive()
    }
}

impl Transaction {
    /// Starts a transaction for `user` with the stack in `<confdir>/<service>`. `conv` answers
    /// every message: `Some(text)` answers a prompt, `None` to a prompt makes the conversation
    /// fail (as when the person hangs up); the value is ignored for errors and info.
    pub fn start(
        service: &str,
        user: &str,
        confdir: &Path,
        conv: impl FnMut(&Message) -> Option<String> + 'static,
    ) -> Result<Transaction, PamError> {
        let service = c_string("service", service.as_bytes())?;
        let user = c_string("user", user.as_bytes())?;
        let confdir = c_string("confdir", confdir.as_os_str().as_bytes())?;
        let state = Box::new(ConvState {
            conversation: Box::new(conv),
            panic: None,
        });
        let state = NonNull::from(Box::leak(state));
        let pam_conv = Box::new(PamConv {
            conv: Some(converse),
            appdata_ptr: state.as_ptr().cast(),
        });
        let mut pamh: *mut PamHandle = ptr::null_mut();
        // SAFETY: every string is a NUL-terminated CString alive for the call; `pam_conv` points
        // to a live struct whose appdata is the `ConvState` above, both kept until `pam_end`;
        // `pamh` is a valid place for libpam to store the new handle.
        let code = unsafe {
            pam_start_confdir(
                service.as_ptr(),
                user.as_ptr(),
                &*pam_conv,
                confdir.as_ptr(),
                &mut pamh,
            )
        };
        match NonNull::new(pamh) {
            Some(pamh) if code == PAM_SUCCESS => Ok(Transaction {
                pamh,
                state,
                _conv: pam_conv,
                last_status: PAM_SUCCESS,
            }),
            _ => {
                // SAFETY: libpam failed and frees its handle itself, so nothing refers to the
                // state any more; it came from `Box::leak` above and is freed once, here.
                drop(unsafe { Box::from_raw(state.as_ptr()) });
                Err(PamError {
                    code,
                    message: strerror(ptr::null_mut(), code),
                })
            }
        }
    }

    /// Sets PAM_RHOST, the remote host, as sshd does.
    pub fn set_rhost(&mut self, rhost: &str) -> Result<(), PamError> {
        self.set_item(PAM_RHOST, "rhost", rhost)
    }

    /// Sets PAM_TTY.
    pub fn set_tty(&mut self, tty: &str) -> Result<(), PamError> {
        self.set_item(PAM_TTY, "tty", tty)
    }

    fn set_item(&mut self, item: c_int, what: &str, value: &str) -> Result<(), PamError> {
        let value = c_string(what, value.as_bytes())?;
        // SAFETY: the handle is live until `Drop`; libpam copies the NUL-terminated string.
        let code = unsafe { pam_set_item(self.pamh.as_ptr(), item, value.as_ptr().cast()) };
        if code == PAM_SUCCESS {
            Ok(())
        } else {
            Err(PamError {
                code,
                message: strerror(self.pamh.as_ptr(), code),
            })
        }
    }

    /// Runs the auth stack and returns libpam's raw result. A panic in the conversation is
    /// resumed here, after libpam has returned.
    pub fn authenticate(&mut self) -> i32 {
        // SAFETY: the handle is live until `Drop`, and the conversation state it points to is
        // only touched by the trampoline during this call.
        let code = unsafe { pam_authenticate(self.pamh.as_ptr(), 0) };
        self.last_status = code;
        // SAFETY: libpam has returned, so the trampoline is not running and nothing else holds
        // a reference to the state.
        let panic = unsafe { (*self.state.as_ptr()).panic.take() };
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
        code
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // SAFETY: the handle came from a successful pam_start_confdir and is ended exactly once.
        unsafe { pam_end(self.pamh.as_ptr(), self.last_status) };
        // SAFETY: after pam_end libpam no longer calls the conversation; the state came from
        // `Box::leak` in `start` and is freed exactly once, here.
        drop(unsafe { Box::from_raw(self.state.as_ptr()) });
    }
}

fn c_string(what: &str, bytes: &[u8]) -> Result<CString, PamError> {
    CString::new(bytes).map_err(|_| PamError {
        code: PAM_BUF_ERR,
        message: format!("the {what} contains a NUL byte"),
    })
}

/// libpam's text for a code. Linux-PAM does not use the handle, so null is fine before one
/// exists.
fn strerror(pamh: *mut PamHandle, code: c_int) -> String {
    // SAFETY: pam_strerror returns a pointer to a static NUL-terminated string (or null, which
    // is checked); Linux-PAM ignores the handle argument.
    unsafe {
        let text = pam_strerror(pamh, code);
        if text.is_null() {
            String::new()
        } else {
            CStr::from_ptr(text).to_string_lossy().into_owned()
        }
    }
}

/// The conversation function libpam calls. Never unwinds: the whole body runs under
/// `catch_unwind`, and a panic of the closure is stored for `authenticate` to resume.
extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: libpam passes the pointers of its conversation contract; each one is
        // checked for null in `converse_checked` before use.
        unsafe { converse_checked(num_msg, msg, resp, appdata_ptr) }
    }))
    .unwrap_or(PAM_CONV_ERR)
}

/// The body of [`converse`].
///
/// # Safety
/// When non-null: `msg` points to `num_msg` pointers to `pam_message`s with NUL-terminated (or
/// null) texts, `resp` is writable, and `appdata_ptr` is the `ConvState` of a live
/// [`Transaction`] that nothing else is using during the call.
unsafe fn converse_checked(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    if resp.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: `resp` is non-null and writable per the contract; clear it so an error leaves
    // libpam nothing to free.
    unsafe { *resp = ptr::null_mut() };
    if msg.is_null() || appdata_ptr.is_null() || !(1..=PAM_MAX_NUM_MSG).contains(&num_msg) {
        return PAM_CONV_ERR;
    }
    // SAFETY: appdata is the live ConvState, used by no one else during this call.
    let state = unsafe { &mut *appdata_ptr.cast::<ConvState>() };
    if state.panic.is_some() {
        return PAM_CONV_ERR;
    }
    // The count was checked to be 1..=32 above.
    let count = num_msg.unsigned_abs() as usize;
    // SAFETY: calloc of `count` zeroed responses; null (out of memory) is checked.
    let replies =
        unsafe { libc::calloc(count, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for index in 0..count {
        // SAFETY: `msg` holds `count` entries (Linux-PAM passes an array of pointers).
        let message = unsafe { *msg.add(index) };
        // SAFETY: `message` is null or points to a pam_message per the contract.
        let answer = unsafe { answer_one(state, message) };
        match answer {
            // SAFETY: `replies` has `count` zeroed entries and `index < count`.
            Ok(text) => unsafe { (*replies.add(index)).resp = text },
            Err(code) => {
                // SAFETY: the first `index` entries hold malloc'ed strings or null, the rest
                // null; nobody else has seen the array.
                unsafe { free_replies(replies, count) };
                return code;
            }
        }
    }
    // SAFETY: `resp` is writable; libpam now owns the array and its strings.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

/// Asks the closure about one message; the answer is a malloc'ed C string for prompts, null for
/// the rest.
///
/// # Safety
/// `message` is null or points to a `pam_message` whose text is null or NUL-terminated.
unsafe fn answer_one(
    state: &mut ConvState,
    message: *const PamMessage,
) -> Result<*mut c_char, c_int> {
    if message.is_null() {
        return Err(PAM_CONV_ERR);
    }
    // SAFETY: non-null, and a valid pam_message per the contract.
    let (style, text) = unsafe { ((*message).msg_style, (*message).msg) };
    let style = MessageStyle::from_raw(style).ok_or(PAM_CONV_ERR)?;
    let text = if text.is_null() {
        String::new()
    } else {
        // SAFETY: non-null and NUL-terminated per the contract.
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    };
    let message = Message { style, text };
    let conversation = &mut state.conversation;
    let answer = match catch_unwind(AssertUnwindSafe(|| conversation(&message))) {
        Ok(answer) => answer,
        Err(payload) => {
            state.panic = Some(payload);
            return Err(PAM_CONV_ERR);
        }
    };
    if !style.is_prompt() {
        return Ok(ptr::null_mut());
    }
    let answer = answer.ok_or(PAM_CONV_ERR)?;
    malloc_c_string(answer.as_bytes())
}

/// Copies `bytes` into a malloc'ed NUL-terminated string, which libpam will `free`.
fn malloc_c_string(bytes: &[u8]) -> Result<*mut c_char, c_int> {
    if bytes.contains(&0) {
        return Err(PAM_CONV_ERR);
    }
    // SAFETY: malloc of len + 1 bytes; null is checked.
    let copy = unsafe { libc::malloc(bytes.len() + 1) }.cast::<u8>();
    if copy.is_null() {
        return Err(PAM_BUF_ERR);
    }
    // SAFETY: `copy` has room for len + 1 bytes and does not overlap `bytes`.
    unsafe {
        ptr::copy_nonoverlapping(bytes.as_ptr(), copy, bytes.len());
        *copy.add(bytes.len()) = 0;
    }
    Ok(copy.cast())
}

/// Frees a reply array that libpam never saw, wiping each answer first (they may be codes).
///
/// # Safety
/// `replies` came from calloc with `count` entries, each `resp` null or a malloc'ed
/// NUL-terminated string, and nothing else refers to them.
unsafe fn free_replies(replies: *mut PamResponse, count: usize) {
    for index in 0..count {
        // SAFETY: within the `count` entries of the array.
        let text = unsafe { (*replies.add(index)).resp };
        if !text.is_null() {
            // SAFETY: a malloc'ed NUL-terminated string owned by us.
            unsafe {
                let len = libc::strlen(text);
                ptr::write_bytes(text, 0, len);
                libc::free(text.cast());
            }
        }
    }
    // SAFETY: the array came from calloc and is freed once.
    unsafe { libc::free(replies.cast()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::PamConfDir;
    use common::frame;
    use common::wire::{Request, Response};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    /// Every message a conversation saw.
    type Seen = Arc<Mutex<Vec<Message>>>;

    /// Records every message and answers each prompt with `answer`.
    fn recording(answer: Option<&str>) -> (Seen, impl FnMut(&Message) -> Option<String> + 'static) {
        let seen = Seen::default();
        let record = Arc::clone(&seen);
        let answer = answer.map(str::to_owned);
        let conv = move |m: &Message| {
            record.lock().unwrap().push(m.clone());
            answer.clone()
        };
        (seen, conv)
    }

    fn authenticate(confdir: &PamConfDir, service: &str) -> i32 {
        let mut tx = Transaction::start(service, "alice", confdir.path(), |_| None).unwrap();
        tx.authenticate()
    }

    #[test]
    fn code_names_match_libpam_and_unknown_codes_are_named_as_such() {
        assert_eq!(code_name(PAM_SUCCESS), "PAM_SUCCESS");
        assert_eq!(code_name(PAM_SERVICE_ERR), "PAM_SERVICE_ERR");
        assert_eq!(code_name(PAM_PERM_DENIED), "PAM_PERM_DENIED");
        assert_eq!(code_name(PAM_AUTH_ERR), "PAM_AUTH_ERR");
        assert_eq!(code_name(PAM_AUTHINFO_UNAVAIL), "PAM_AUTHINFO_UNAVAIL");
        assert_eq!(code_name(PAM_USER_UNKNOWN), "PAM_USER_UNKNOWN");
        assert_eq!(code_name(PAM_MAXTRIES), "PAM_MAXTRIES");
        assert_eq!(code_name(PAM_CONV_ERR), "PAM_CONV_ERR");
        assert_eq!(code_name(PAM_IGNORE), "PAM_IGNORE");
        assert_eq!(code_name(PAM_ABORT), "PAM_ABORT");
        assert_eq!(code_name(PAM_BAD_ITEM), "PAM_BAD_ITEM");
        assert_eq!(code_name(31), "PAM_INCOMPLETE");
        assert_eq!(code_name(32), "PAM_UNKNOWN_CODE");
        assert_eq!(code_name(-1), "PAM_UNKNOWN_CODE");
    }

    #[test]
    fn given_pam_permit_authentication_succeeds() {
        let dir = PamConfDir::new();
        dir.service("permit", "auth required pam_permit.so\n");
        assert_eq!(code_name(authenticate(&dir, "permit")), "PAM_SUCCESS");
    }

    #[test]
    fn given_pam_deny_authentication_fails() {
        let dir = PamConfDir::new();
        dir.service(
            "deny",
            "auth required /usr/lib/x86_64-linux-gnu/security/pam_deny.so\n\
             auth required pam_permit.so\n",
        );
        assert_eq!(code_name(authenticate(&dir, "deny")), "PAM_AUTH_ERR");
    }

    #[test]
    fn the_stack_is_read_from_the_confdir_not_etc_pam_d() {
        // /etc/pam.d/login asks pam_unix for a password this conversation never gives; the
        // confdir's "login" permits.
        let dir = PamConfDir::new();
        dir.service("login", "auth required pam_permit.so\n");
        assert_eq!(code_name(authenticate(&dir, "login")), "PAM_SUCCESS");
    }

    #[test]
    fn info_messages_reach_the_conversation_with_rhost_and_tty_set() {
        let dir = PamConfDir::new();
        dir.service(
            "echo",
            "auth optional pam_echo.so user=%u rhost=%H tty=%t\nauth required pam_permit.so\n",
        );
        let (seen, conv) = recording(None);
        let mut tx = Transaction::start("echo", "alice", dir.path(), conv).unwrap();
        tx.set_rhost("192.0.2.1").unwrap();
        tx.set_tty("pts/3").unwrap();
        assert_eq!(code_name(tx.authenticate()), "PAM_SUCCESS");
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Message {
                style: MessageStyle::TextInfo,
                text: "user=alice rhost=192.0.2.1 tty=pts/3".into(),
            }]
        );
    }

    #[test]
    fn a_nul_byte_in_a_name_is_refused_before_libpam() {
        let dir = PamConfDir::new();
        let err = Transaction::start("permit", "al\0ice", dir.path(), |_| None).unwrap_err();
        assert_eq!(err.code, PAM_BUF_ERR);
        dir.service("permit", "auth required pam_permit.so\n");
        let mut tx = Transaction::start("permit", "alice", dir.path(), |_| None).unwrap();
        assert_eq!(tx.set_rhost("a\0b").unwrap_err().code, PAM_BUF_ERR);
    }

    #[test]
    fn our_module_with_a_missing_socket_is_unavailable_promptly() {
        let dir = PamConfDir::new();
        let socket = tempfile::tempdir().unwrap();
        dir.otp_then_permit("sshd", &socket.path().join("missing.sock"), "");
        let (seen, conv) = recording(Some("123456"));
        let start = Instant::now();
        let mut tx = Transaction::start("sshd", "alice", dir.path(), conv).unwrap();
        let code = tx.authenticate();
        assert_eq!(code_name(code), "PAM_AUTHINFO_UNAVAIL");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert!(seen.lock().unwrap().is_empty(), "no prompt without otpd");
    }

    #[test]
    fn our_module_with_a_bad_argument_is_a_service_error() {
        let dir = PamConfDir::new();
        let socket = tempfile::tempdir().unwrap();
        dir.otp_then_permit("sshd", &socket.path().join("otpd.sock"), "timout=2");
        assert_eq!(code_name(authenticate(&dir, "sshd")), "PAM_SERVICE_ERR");
    }

    /// A one-shot fake otpd on a temporary socket: answers each request with the next response
    /// and returns the requests it got. Owned by root like the test, so the module trusts it.
    struct FakeOtpd {
        _dir: tempfile::TempDir,
        socket: PathBuf,
        thread: JoinHandle<Vec<Request>>,
    }

    impl FakeOtpd {
        fn start(responses: Vec<Response>) -> FakeOtpd {
            let dir = tempfile::tempdir().unwrap();
            let socket = dir.path().join("otpd.sock");
            let listener = UnixListener::bind(&socket).unwrap();
            listener.set_nonblocking(true).unwrap();
            let thread = std::thread::spawn(move || {
                let mut requests = Vec::new();
                for response in responses {
                    let Some(mut conn) = accept_within(&listener, Duration::from_secs(5)) else {
                        break;
                    };
                    requests.push(frame::read_frame::<_, Request>(&mut conn).unwrap());
                    frame::write_frame(&mut conn, &response).unwrap();
                }
                requests
            });
            FakeOtpd {
                _dir: dir,
                socket,
                thread,
            }
        }

        fn requests(self) -> Vec<Request> {
            self.thread.join().unwrap()
        }
    }

    fn accept_within(listener: &UnixListener, limit: Duration) -> Option<UnixStream> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok((conn, _)) = listener.accept() {
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(limit)).unwrap();
                return Some(conn);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    fn prompt() -> Response {
        Response::Prompt {
            challenge: "ch-1".into(),
            prompt: "Code sent to a***@e***.com (valid 10 min): ".into(),
            wrong_code: None,
            log_in_again: None,
        }
    }

    #[test]
    fn our_module_prompts_with_echo_off_and_sends_the_typed_code() {
        let otpd = FakeOtpd::start(vec![prompt(), Response::Success]);
        let dir = PamConfDir::new();
        dir.otp_then_permit("sshd", &otpd.socket, "debug");
        let (seen, conv) = recording(Some("482913"));
        let mut tx = Transaction::start("sshd", "alice", dir.path(), conv).unwrap();
        tx.set_rhost("192.0.2.9").unwrap();
        tx.set_tty("ssh").unwrap();
        assert_eq!(code_name(tx.authenticate()), "PAM_SUCCESS");
        drop(tx);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Message {
                style: MessageStyle::PromptEchoOff,
                text: "Code sent to a***@e***.com (valid 10 min): ".into(),
            }]
        );
        let requests = otpd.requests();
        assert_eq!(requests.len(), 2, "{requests:?}");
        match &requests[0] {
            Request::Begin { login, .. } => {
                assert_eq!(login.user, "alice");
                assert_eq!(login.service, "sshd");
                assert_eq!(login.rhost.as_deref(), Some("192.0.2.9"));
                assert_eq!(login.tty.as_deref(), Some("ssh"));
            }
            other => panic!("expected begin, got {other:?}"),
        }
        match &requests[1] {
            Request::Answer {
                challenge, code, ..
            } => {
                assert_eq!(challenge, "ch-1");
                assert_eq!(code.expose(), "482913");
            }
            other => panic!("expected answer, got {other:?}"),
        }
    }

    #[test]
    fn an_error_message_from_the_module_reaches_the_conversation() {
        let otpd = FakeOtpd::start(vec![Response::Denied {
            reason: common::wire::DenyReason::RateLimited,
            message: "Too many codes sent.".into(),
        }]);
        let dir = PamConfDir::new();
        dir.otp_then_permit("sshd", &otpd.socket, "");
        let (seen, conv) = recording(None);
        let mut tx = Transaction::start("sshd", "alice", dir.path(), conv).unwrap();
        assert_eq!(code_name(tx.authenticate()), "PAM_AUTH_ERR");
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Message {
                style: MessageStyle::ErrorMsg,
                text: "Too many codes sent.".into(),
            }]
        );
        assert_eq!(otpd.requests().len(), 1);
    }

    #[test]
    fn no_answer_to_a_prompt_is_a_conversation_error() {
        let otpd = FakeOtpd::start(vec![prompt()]);
        let dir = PamConfDir::new();
        dir.otp_then_permit("sshd", &otpd.socket, "");
        let mut tx = Transaction::start("sshd", "alice", dir.path(), |_| None).unwrap();
        assert_eq!(code_name(tx.authenticate()), "PAM_CONV_ERR");
        drop(tx);
        assert_eq!(otpd.requests().len(), 1, "no answer may be sent");
    }

    #[test]
    fn a_panic_in_the_conversation_is_resumed_after_libpam_returns() {
        let otpd = FakeOtpd::start(vec![prompt()]);
        let dir = PamConfDir::new();
        dir.otp_then_permit("sshd", &otpd.socket, "");
        let mut tx = Transaction::start("sshd", "alice", dir.path(), |_| {
            panic!("assertion inside the conversation")
        })
        .unwrap();
        let result = catch_unwind(AssertUnwindSafe(|| tx.authenticate()));
        let payload = result.expect_err("the panic must reach the test");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"assertion inside the conversation")
        );
        // libpam saw PAM_CONV_ERR, so the module sent no answer.
        assert_eq!(code_name(tx.last_status), "PAM_CONV_ERR");
        drop(tx);
        assert_eq!(otpd.requests().len(), 1);
    }

    /// Calls the trampoline directly, as libpam would, with `messages`.
    fn converse_with(
        state: &mut ConvState,
        messages: &[(c_int, &CStr)],
    ) -> (c_int, Option<Vec<Option<String>>>) {
        let raw: Vec<PamMessage> = messages
            .iter()
            .map(|(style, text)| PamMessage {
                msg_style: *style,
                msg: text.as_ptr(),
            })
            .collect();
        let mut pointers: Vec<*const PamMessage> = raw.iter().map(|m| m as *const _).collect();
        let mut resp: *mut PamResponse = ptr::null_mut();
        let code = converse(
            c_int::try_from(messages.len()).unwrap(),
            pointers.as_mut_ptr(),
            &mut resp,
            (state as *mut ConvState).cast(),
        );
        if resp.is_null() {
            return (code, None);
        }
        let mut answers = Vec::new();
        for index in 0..messages.len() {
            // SAFETY: the trampoline returned an array of `messages.len()` responses, each
            // null or a malloc'ed string, now owned by this test as libpam would own them.
            unsafe {
                let text = (*resp.add(index)).resp;
                if text.is_null() {
                    answers.push(None);
                } else {
                    answers.push(Some(CStr::from_ptr(text).to_string_lossy().into_owned()));
                    libc::free(text.cast());
                }
            }
        }
        // SAFETY: the calloc'ed array, freed once.
        unsafe { libc::free(resp.cast()) };
        (code, Some(answers))
    }

    fn state(conv: impl FnMut(&Message) -> Option<String> + 'static) -> ConvState {
        ConvState {
            conversation: Box::new(conv),
            panic: None,
        }
    }

    #[test]
    fn several_messages_in_one_call_are_answered_in_order() {
        let mut state = state(|m| match m.style {
            MessageStyle::PromptEchoOn => Some(format!("echo-on:{}", m.text)),
            MessageStyle::PromptEchoOff => Some(format!("echo-off:{}", m.text)),
            _ => Some("ignored for messages".into()),
        });
        let (code, answers) = converse_with(
            &mut state,
            &[(3, c"error"), (2, c"login:"), (4, c"info"), (1, c"code:")],
        );
        assert_eq!(code, PAM_SUCCESS);
        assert_eq!(
            answers.unwrap(),
            vec![
                None,
                Some("echo-on:login:".into()),
                None,
                Some("echo-off:code:".into())
            ]
        );
    }

    #[test]
    fn an_unsupported_style_fails_the_whole_call_and_returns_nothing() {
        let mut state = state(|_| Some("x".into()));
        // PAM_RADIO_TYPE (5) after a prompt that was already answered.
        let (code, answers) = converse_with(&mut state, &[(1, c"code:"), (5, c"radio")]);
        assert_eq!(code, PAM_CONV_ERR);
        assert!(answers.is_none());
    }

    #[test]
    fn bad_pointers_and_counts_are_refused() {
        let mut state = state(|_| panic!("must not be called"));
        let appdata: *mut c_void = (&mut state as *mut ConvState).cast();
        let message = PamMessage {
            msg_style: 1,
            msg: c"code:".as_ptr(),
        };
        let mut pointers = [&message as *const PamMessage];
        let mut resp: *mut PamResponse = ptr::null_mut();
        assert_eq!(
            converse(1, pointers.as_mut_ptr(), ptr::null_mut(), appdata),
            PAM_CONV_ERR
        );
        assert_eq!(
            converse(1, ptr::null_mut(), &mut resp, appdata),
            PAM_CONV_ERR
        );
        assert_eq!(
            converse(1, pointers.as_mut_ptr(), &mut resp, ptr::null_mut()),
            PAM_CONV_ERR
        );
        assert_eq!(
            converse(0, pointers.as_mut_ptr(), &mut resp, appdata),
            PAM_CONV_ERR
        );
        assert_eq!(
            converse(-1, pointers.as_mut_ptr(), &mut resp, appdata),
            PAM_CONV_ERR
        );
        assert_eq!(
            converse(33, pointers.as_mut_ptr(), &mut resp, appdata),
            PAM_CONV_ERR
        );
        let mut null_entry = [ptr::null::<PamMessage>()];
        assert_eq!(
            converse(1, null_entry.as_mut_ptr(), &mut resp, appdata),
            PAM_CONV_ERR
        );
        assert!(resp.is_null());
    }

    #[test]
    fn after_a_panic_the_conversation_is_not_called_again() {
        let calls = Arc::new(Mutex::new(0));
        let counter = Arc::clone(&calls);
        let mut state = state(move |_| {
            *counter.lock().unwrap() += 1;
            panic!("first call panics");
        });
        assert_eq!(converse_with(&mut state, &[(1, c"a")]).0, PAM_CONV_ERR);
        assert_eq!(converse_with(&mut state, &[(1, c"b")]).0, PAM_CONV_ERR);
        assert_eq!(*calls.lock().unwrap(), 1);
        assert!(state.panic.is_some());
    }

    #[test]
    fn an_answer_with_a_nul_byte_is_a_conversation_error() {
        let mut state = state(|_| Some("12\0 34".into()));
        assert_eq!(converse_with(&mut state, &[(1, c"code:")]).0, PAM_CONV_ERR);
    }

    /// Records every message and answers the prompts with `answers`, in order; a prompt beyond
    /// them fails the conversation.
    fn answering(answers: &[&str]) -> (Seen, impl FnMut(&Message) -> Option<String> + 'static) {
        let seen = Seen::default();
        let record = Arc::clone(&seen);
        let mut answers: std::collections::VecDeque<String> =
            answers.iter().map(|a| (*a).to_owned()).collect();
        let conv = move |m: &Message| {
            record.lock().unwrap().push(m.clone());
            if m.style.is_prompt() {
                answers.pop_front()
            } else {
                None
            }
        };
        (seen, conv)
    }

    fn wrong_code() -> Response {
        Response::Denied {
            reason: common::wire::DenyReason::WrongCode,
            message: "Wrong code.".into(),
        }
    }

    #[test]
    fn our_module_resends_on_an_empty_answer_and_gives_max_tries_after_wrong_codes() {
        let resent = Response::Prompt {
            challenge: "ch-2".into(),
            prompt: "No new code yet (possible in 40 s). Code sent to a***@e***.com: ".into(),
            wrong_code: None,
            log_in_again: None,
        };
        let otpd = FakeOtpd::start(vec![prompt(), resent, wrong_code(), wrong_code()]);
        let dir = PamConfDir::new();
        dir.otp_then_permit("sshd", &otpd.socket, "tries=3 echo");
        let (seen, conv) = answering(&["", "000000", "111111"]);
        let mut tx = Transaction::start("sshd", "alice", dir.path(), conv).unwrap();
        assert_eq!(code_name(tx.authenticate()), "PAM_MAXTRIES");
        drop(tx);
        let prompts: Vec<(MessageStyle, String)> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.style.is_prompt())
            .map(|m| (m.style, m.text.clone()))
            .collect();
        assert_eq!(prompts.len(), 3, "{prompts:?}");
        assert!(
            prompts
                .iter()
                .all(|(style, _)| *style == MessageStyle::PromptEchoOn)
        );
        assert!(prompts[1].1.starts_with("No new code yet"), "{prompts:?}");
        let requests = otpd.requests();
        let kinds: Vec<&str> = requests
            .iter()
            .map(|r| match r {
                Request::Begin { .. } => "begin",
                Request::Resend { .. } => "resend",
                Request::Answer { .. } => "answer",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["begin", "resend", "answer", "answer"]);
        match &requests[2] {
            Request::Answer { challenge, .. } => assert_eq!(challenge, "ch-2"),
            other => panic!("expected answer, got {other:?}"),
        }
    }

    /// The documented single-secret stack, with pam_exec standing in for pam_unix: it accepts
    /// exactly the password `hunter2` from PAM_AUTHTOK (pam_exec writes it NUL-terminated to
    /// stdin), so the test needs no system account.
    fn single_secret_stack(dir: &PamConfDir, socket: &std::path::Path) -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let scripts = tempfile::tempdir().unwrap();
        let check = scripts.path().join("check-password");
        std::fs::write(
            &check,
            "#!/bin/bash\nIFS= read -r -d '' password\n[ \"$password\" = hunter2 ]\n",
        )
        .unwrap();
        std::fs::set_permissions(&check, std::fs::Permissions::from_mode(0o755)).unwrap();
        let module = crate::paths::module();
        dir.service(
            "vsftpd",
            &format!(
                "auth required {module} socket={socket} split\n\
                 auth requisite pam_exec.so quiet expose_authtok {check}\n\
                 auth required {module} socket={socket}\n",
                module = module.display(),
                socket = socket.display(),
                check = check.display(),
            ),
        );
        scripts
    }

    fn probe(expects_code: bool) -> Response {
        Response::Probe {
            code_length: 6,
            expects_code,
        }
    }

    #[test]
    fn the_split_stack_hands_the_password_on_and_verifies_the_code_without_a_second_prompt() {
        let otpd = FakeOtpd::start(vec![probe(true), Response::Success]);
        let dir = PamConfDir::new();
        let _scripts = single_secret_stack(&dir, &otpd.socket);
        let (seen, conv) = answering(&["hunter2482913"]);
        let mut tx = Transaction::start("vsftpd", "alice", dir.path(), conv).unwrap();
        assert_eq!(code_name(tx.authenticate()), "PAM_SUCCESS");
        drop(tx);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Message {
                style: MessageStyle::PromptEchoOff,
                text: "Password: ".into(),
            }]
        );
        let requests = otpd.requests();
        assert_eq!(requests.len(), 2, "{requests:?}");
        assert!(matches!(requests[0], Request::Probe { .. }), "{requests:?}");
        match &requests[1] {
            Request::Verify { login, code } => {
                assert_eq!(login.service, "vsftpd");
                assert_eq!(code.expose(), "482913");
            }
            other => panic!("expected verify, got {other:?}"),
        }
    }

    #[test]
    fn the_split_stack_with_the_password_alone_mails_a_code_and_says_so() {
        let otpd = FakeOtpd::start(vec![probe(false), prompt()]);
        let dir = PamConfDir::new();
        let _scripts = single_secret_stack(&dir, &otpd.socket);
        let (seen, conv) = answering(&["hunter2"]);
        let mut tx = Transaction::start("vsftpd", "alice", dir.path(), conv).unwrap();
        assert_eq!(code_name(tx.authenticate()), "PAM_AUTH_ERR");
        drop(tx);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[1].style, MessageStyle::ErrorMsg);
        assert_eq!(
            seen[1].text,
            "Code sent to a***@e***.com (valid 10 min). Log in again with your password \
             followed by the code."
        );
        let requests = otpd.requests();
        assert!(matches!(requests[1], Request::Begin { .. }), "{requests:?}");
    }

    #[test]
    fn the_split_stack_with_a_wrong_password_never_asks_otpd_to_mail() {
        let otpd = FakeOtpd::start(vec![probe(false), prompt()]);
        let dir = PamConfDir::new();
        let _scripts = single_secret_stack(&dir, &otpd.socket);
        let (_, conv) = answering(&["guessed"]);
        let mut tx = Transaction::start("vsftpd", "alice", dir.path(), conv).unwrap();
        assert_ne!(code_name(tx.authenticate()), "PAM_SUCCESS");
        drop(tx);
        let requests = otpd.requests();
        assert_eq!(requests.len(), 1, "only the probe: {requests:?}");
        assert!(matches!(requests[0], Request::Probe { .. }));
    }

    #[test]
    fn the_split_stack_with_codes_off_is_the_password_alone() {
        let skip = || Response::Skip {
            reason: common::wire::SkipReason::ProtocolNotEnabled,
        };
        let otpd = FakeOtpd::start(vec![skip(), skip()]);
        let dir = PamConfDir::new();
        let _scripts = single_secret_stack(&dir, &otpd.socket);
        let (_, conv) = answering(&["hunter2"]);
        let mut tx = Transaction::start("vsftpd", "alice", dir.path(), conv).unwrap();
        assert_eq!(code_name(tx.authenticate()), "PAM_SUCCESS");
        drop(tx);
        let requests = otpd.requests();
        assert!(matches!(requests[0], Request::Probe { .. }), "{requests:?}");
        assert!(matches!(requests[1], Request::Begin { .. }), "{requests:?}");
    }

    #[test]
    fn a_code_stashed_by_a_failed_attempt_never_serves_the_next_attempt_on_the_same_handle() {
        // login(1) and others call pam_authenticate again on the same handle, where module
        // data lives on. The first attempt's password is wrong, so the line that would have used
        // its stashed code never runs; in the second, otpd says no code is needed, so the split
        // line stashes nothing new and must have cleared the old one.
        let skip = || Response::Skip {
            reason: common::wire::SkipReason::ModeOff,
        };
        let otpd = FakeOtpd::start(vec![probe(true), skip(), skip()]);
        let dir = PamConfDir::new();
        let _scripts = single_secret_stack(&dir, &otpd.socket);
        let (_, conv) = answering(&["guessed482913", "hunter2"]);
        let mut tx = Transaction::start("vsftpd", "alice", dir.path(), conv).unwrap();
        assert_ne!(code_name(tx.authenticate()), "PAM_SUCCESS");
        assert_eq!(code_name(tx.authenticate()), "PAM_SUCCESS");
        drop(tx);
        let requests = otpd.requests();
        assert_eq!(requests.len(), 3, "{requests:?}");
        assert!(matches!(requests[1], Request::Probe { .. }), "{requests:?}");
        assert!(matches!(requests[2], Request::Begin { .. }), "{requests:?}");
    }
}
