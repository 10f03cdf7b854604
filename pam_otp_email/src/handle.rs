//! [`LoginHandle`] on top of pam-bindings' `PamHandle`: the items, the conversation, syslog,
//! PAM_AUTHTOK and the stash.

use pam::constants::{PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON};
use pam::conv::Conv;
use pam::items::{AuthTok, RHost, Service, Tty};
use pam::module::PamHandle;

use crate::ffi;
use crate::flow::{ConvError, LogLevel, LoginHandle, PamItemError, Stash};
use crate::secret::SecretBytes;

/// The handle of the login libpam is running.
pub struct PamLogin<'a> {
    pamh: &'a mut PamHandle,
    /// The application passed PAM_SILENT: no messages, only the prompt the login needs.
    silent: bool,
}

impl std::fmt::Debug for PamLogin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PamLogin")
            .field("silent", &self.silent)
            .finish_non_exhaustive()
    }
}

impl<'a> PamLogin<'a> {
    /// Wraps the handle of one hook call. Nothing is read from it until the flow asks.
    pub fn new(pamh: &'a mut PamHandle, silent: bool) -> Self {
        PamLogin { pamh, silent }
    }

    fn conv(&self) -> Option<Conv<'_>> {
        self.pamh.get_item::<Conv>().ok().flatten()
    }
}

impl LoginHandle for PamLogin<'_> {
    /// Through `pam_get_user`, so an application that did not set PAM_USER is asked for it. A
    /// name that is not UTF-8 counts as no name: changing it lossily could name another user.
    fn user(&mut self) -> Option<String> {
        self.pamh.get_user(None).ok()
    }

    fn service(&self) -> Option<String> {
        let item = self.pamh.get_item::<Service>().ok().flatten()?;
        Some(item.to_string_lossy().into_owned())
    }

    /// Lossy rather than dropped: otpd limits tries per remote host, and a host name that is not
    /// UTF-8 must not escape that by turning into "no host".
    fn rhost(&self) -> Option<String> {
        let item = self.pamh.get_item::<RHost>().ok().flatten()?;
        Some(item.to_string_lossy().into_owned())
    }

    fn tty(&self) -> Option<String> {
        let item = self.pamh.get_item::<Tty>().ok().flatten()?;
        Some(item.to_string_lossy().into_owned())
    }

    /// From the PAM environment only (`pam_getenv`); see [`ffi::pam_env`].
    fn ssh_auth_info(&self) -> Option<String> {
        ffi::pam_env(self.pamh, c"SSH_AUTH_INFO_0")
    }

    fn prompt(&mut self, text: &str, echo: bool) -> Result<Option<SecretBytes>, ConvError> {
        let conv = self.conv().ok_or(ConvError::Failed)?;
        let style = if echo {
            PAM_PROMPT_ECHO_ON
        } else {
            PAM_PROMPT_ECHO_OFF
        };
        // pam-bindings copies the reply into a zeroizing buffer and wipes libpam's copy.
        let Some(reply) = conv.send(style, text).map_err(|_| ConvError::Failed)? else {
            return Ok(None);
        };
        Ok(Some(SecretBytes::from_slice(reply.as_bytes())))
    }

    fn error_message(&mut self, text: &str) {
        if self.silent {
            return;
        }
        if let Some(conv) = self.conv() {
            // Ignored on purpose: the login fails anyway, and a conversation that cannot show
            // an error must not turn a refusal into something else.
            let _ = conv.send(PAM_ERROR_MSG, text);
        }
    }

    fn log(&self, level: LogLevel, text: &str) {
        ffi::syslog(self.pamh, level, text);
    }

    fn authtok(&self) -> Option<SecretBytes> {
        let item = self.pamh.get_item::<AuthTok>().ok().flatten()?;
        Some(SecretBytes::from_slice(item.as_bytes()))
    }

    fn set_authtok(&mut self, secret: &[u8]) -> Result<(), PamItemError> {
        ffi::set_authtok(self.pamh, secret).map_err(|code| PamItemError {
            item: "password (PAM_AUTHTOK)",
            code,
        })
    }

    fn stash(&mut self, stash: Stash) -> Result<(), PamItemError> {
        ffi::store_stash(self.pamh, Some(stash)).map_err(stash_error)
    }

    /// Clears only when something was stashed, so a stack without a split line never writes
    /// module data.
    fn take_stash(&mut self) -> Result<Option<Stash>, PamItemError> {
        let Some(stash) = ffi::stashed(self.pamh) else {
            return Ok(None);
        };
        ffi::store_stash(self.pamh, None).map_err(stash_error)?;
        Ok(Some(stash))
    }
}

fn stash_error(code: pam::constants::PamResultCode) -> PamItemError {
    PamItemError {
        item: "stash (module data)",
        code: code as i32,
    }
}
