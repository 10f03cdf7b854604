//! One PAM transaction as an application runs it (`pam_start_confdir`, `pam_authenticate`,
//! `pam_end`), in this process, so process start-up does not hide a module's own cost.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use e2e_tests::libpam::{self, Message, Transaction};

use crate::error::BenchError;

/// Runs one whole transaction for `user` on `service` from `rhost`; `answer` is called for each
/// prompt (`None` fails the conversation, as a person hanging up would). Anything but
/// PAM_SUCCESS is an error carrying the code and the messages the stack showed.
pub fn login(
    confdir: &Path,
    service: &str,
    user: &str,
    rhost: &str,
    mut answer: impl FnMut(&str) -> Option<String> + 'static,
) -> Result<(), BenchError> {
    let shown = Rc::new(RefCell::new(Vec::new()));
    let record = Rc::clone(&shown);
    let conversation = move |message: &Message| {
        if message.style.is_prompt() {
            answer(&message.text)
        } else {
            record.borrow_mut().push(message.text.clone());
            None
        }
    };
    let failed = |what: &str, error: libpam::PamError| {
        BenchError::Login(format!("{what} for {user} on {service}: {error}"))
    };
    let mut transaction = Transaction::start(service, user, confdir, conversation)
        .map_err(|e| failed("pam_start", e))?;
    if !rhost.is_empty() {
        transaction
            .set_rhost(rhost)
            .map_err(|e| failed("pam_set_item", e))?;
    }
    let code = transaction.authenticate();
    drop(transaction);
    if code == libpam::PAM_SUCCESS {
        Ok(())
    } else {
        Err(BenchError::Login(format!(
            "{user} on {service}: {} {:?}",
            libpam::code_name(code),
            shown.borrow()
        )))
    }
}
