//! The untrusted fields of a login request, checked before anything else is done with them:
//! empty or over-long ones are refused with an error alone; one holding a NUL byte (or an
//! answer's challenge holding one) is refused with an error and an audit event
//! ([`refuse_bad_fields`], [`refuse_nul_challenge`]).

use std::sync::Arc;

use common::text::{MAX_FIELD_LEN, escape_for_log};
use common::wire::{LoginContext, MAX_SSH_KEY_LEN, MAX_SSH_KEYS, Response};

use super::asker::Asker;
use super::wording::{internal_error, lost};
use crate::audit::{self, Event, Subject};
use crate::caller::Caller;
use crate::off_thread::{self, Lost};
use crate::state::{Active, Shared};
use crate::store::{self, StoreError};

/// The login's fields by the names an error gives them; `None` for one not sent.
fn named_fields(login: &LoginContext) -> [(&'static str, Option<&String>); 5] {
    [
        ("user", Some(&login.user)),
        ("service", Some(&login.service)),
        ("rhost", login.rhost.as_ref()),
        ("tty", login.tty.as_ref()),
        ("protocol", login.protocol.as_ref()),
    ]
}

/// Refuses logins whose fields are empty or longer than [`MAX_FIELD_LEN`]; they are untrusted.
fn check_fields(login: &LoginContext) -> Result<(), String> {
    for (name, value) in named_fields(login) {
        if let Some(value) = value {
            if value.len() > MAX_FIELD_LEN {
                return Err(format!("{name} is longer than {MAX_FIELD_LEN} bytes"));
            }
        }
    }
    if login.user.is_empty() || login.service.is_empty() {
        return Err("user and service must not be empty".into());
    }
    Ok(())
}

/// The name of the first field of `login` that holds a NUL byte. libpam's items are C strings,
/// so the module never sends one: only a hand-made request does, and PostgreSQL's text columns
/// cannot store it (the users read and the audit row would fail as an internal error there).
fn nul_field(login: &LoginContext) -> Option<&'static str> {
    named_fields(login)
        .into_iter()
        .find(|(_, value)| value.is_some_and(|v| v.contains('\0')))
        .map(|(name, _)| name)
}

/// The checks every login request starts with, before its facts are looked up or the store is
/// read: `Err` is the answer to give. Empty or over-long fields are an error alone, as they
/// always were (nothing of them is stored). A field with a NUL byte is an error naming it too,
/// but, like a caller refused for another user, it leaves a `refused_caller` event whose
/// detail names the field: such a hand-made request is audited as one event on SQLite and
/// PostgreSQL alike. The row is written before any other store work, with the offending
/// fields escaped ([`escape_for_log`]), so no NUL reaches the store; a row that cannot be
/// written answers an internal error (the login is refused either way).
pub(super) async fn refuse_bad_fields(
    shared: &Arc<Shared>,
    caller: Caller,
    login: &LoginContext,
) -> Result<(), Response> {
    check_fields(login).map_err(|message| Response::Error { message })?;
    match nul_field(login) {
        Some(name) => refuse_nul(shared, caller, login, name).await,
        None => Ok(()),
    }
}

/// Refuses an answer whose `challenge` holds a NUL byte as [`refuse_bad_fields`] refuses a
/// login field with one: otpd's challenges never hold one, and PostgreSQL could not look it
/// up (it failed there as an internal error). The login's own fields are checked first.
pub(super) async fn refuse_nul_challenge(
    shared: &Arc<Shared>,
    caller: Caller,
    login: &LoginContext,
    challenge: &str,
) -> Result<(), Response> {
    if !challenge.contains('\0') {
        return Ok(());
    }
    refuse_bad_fields(shared, caller, login).await?;
    refuse_nul(shared, caller, login, "challenge").await
}

/// The error naming field `name` as holding a NUL byte, after its `refused_caller` row.
async fn refuse_nul(
    shared: &Arc<Shared>,
    caller: Caller,
    login: &LoginContext,
    name: &str,
) -> Result<(), Response> {
    let message = format!("{name} holds a NUL byte");
    let active = shared.active();
    let language = active.config.defaults.language;
    let (shared, login, detail) = (Arc::clone(shared), login.clone(), message.clone());
    let recorded =
        off_thread::run(move || record_nul_refusal(&shared, &active, caller, login, &detail)).await;
    Err(match recorded {
        Ok(Ok(())) => Response::Error { message },
        Ok(Err(e)) => internal_error(language, &e),
        Err(Lost) => lost(language),
    })
}

/// [`refuse_bad_fields`]'s audit row, on a blocking thread: the login as otpd believes it (a
/// local caller's `rhost` is `local`, whatever it claimed), each field holding a NUL escaped.
fn record_nul_refusal(
    shared: &Shared,
    active: &Active,
    caller: Caller,
    login: LoginContext,
    detail: &str,
) -> Result<(), StoreError> {
    let (asker, mut login) = Asker::of(shared, active, caller, login);
    let escape = |text: &mut String| {
        if text.contains('\0') {
            *text = escape_for_log(text);
        }
    };
    escape(&mut login.user);
    escape(&mut login.service);
    for text in [&mut login.rhost, &mut login.tty, &mut login.protocol]
        .into_iter()
        .flatten()
    {
        escape(text);
    }
    let subject = Subject {
        login: &login,
        protocol: None,
        caller_uid: caller.uid,
        origin: asker.origin,
        relay: asker.relay_host(),
    };
    let now = shared.clock.now();
    let mut store = shared.store();
    store::atomically(&mut store, |store| {
        audit::record(store, now, Event::RefusedCaller, subject, Some(detail))
    })
}

/// Refuses more SSH keys than [`MAX_SSH_KEYS`] or longer ones than [`MAX_SSH_KEY_LEN`]; the
/// module never sends such a list.
pub(super) fn check_ssh_keys(ssh_keys: &[String]) -> Result<(), String> {
    if ssh_keys.len() > MAX_SSH_KEYS {
        return Err(format!("more than {MAX_SSH_KEYS} ssh_keys"));
    }
    if ssh_keys.iter().any(|k| k.len() > MAX_SSH_KEY_LEN) {
        return Err(format!("an ssh key is longer than {MAX_SSH_KEY_LEN} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use common::secret::SecretString;
    use common::wire_admin::AuditRow;

    use crate::login::answer;
    use crate::login::testing::{alice, begin_as_root, relay_down};
    use crate::test_support::caller;

    fn rows_of(shared: &Shared, event: &str) -> Vec<AuditRow> {
        let mut rows = shared.store().audit_since(0, 100).unwrap();
        rows.retain(|row| row.event == event);
        rows
    }

    fn refused(field: &str) -> Response {
        Response::Error {
            message: format!("{field} holds a NUL byte"),
        }
    }

    /// PostgreSQL cannot store a NUL: such a login failed there as an internal error with no
    /// audit row, while SQLite audited it as usual. Now both refuse it by name, with one
    /// `refused_caller` row whose text is escaped, before anything else reads the store.
    #[tokio::test]
    async fn a_field_with_a_nul_byte_is_refused_by_name_and_audited_escaped() {
        let (_dir, shared) = relay_down();
        // Root (sshd) is believed about the host: the row keeps it, escaped.
        let hostile = LoginContext {
            user: "ali\0ce".into(),
            rhost: Some("192.0.2.1\0evil".into()),
            ..alice()
        };
        assert_eq!(begin_as_root(&shared, hostile).await, refused("user"));
        let rows = rows_of(&shared, "refused_caller");
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].user.as_deref(), Some("ali\\x00ce"));
        assert_eq!(rows[0].service.as_deref(), Some("sshd"));
        assert_eq!(rows[0].rhost.as_deref(), Some("192.0.2.1\\x00evil"));
        assert_eq!(rows[0].caller_uid, Some(0));
        assert_eq!(rows[0].detail.as_deref(), Some("user holds a NUL byte"));

        // alice herself, answering a prompt: her claimed host is `local` in the row.
        let own = LoginContext {
            service: "sshd\0".into(),
            rhost: Some("\0".into()),
            ..alice()
        };
        let code = SecretString::new("000000".into());
        let answered = answer(&shared, caller(1000), own, "none".into(), code).await;
        assert_eq!(answered, refused("service"));
        let rows = rows_of(&shared, "refused_caller");
        assert_eq!(rows.len(), 2, "{rows:?}");
        let row = rows.iter().find(|r| r.caller_uid == Some(1000)).unwrap();
        assert_eq!(row.user.as_deref(), Some("alice"));
        assert_eq!(row.service.as_deref(), Some("sshd\\x00"));
        assert_eq!(row.rhost.as_deref(), Some(crate::caller::LOCAL_ORIGIN));
        assert_eq!(row.detail.as_deref(), Some("service holds a NUL byte"));
        // Nothing else was done with either request: no code issued, no other event.
        assert_eq!(shared.store().audit_since(0, 100).unwrap().len(), 2);
        assert_eq!(shared.store().count_rows("SELECT count(*) FROM codes"), 0);
    }

    #[tokio::test]
    async fn an_answers_challenge_with_a_nul_byte_is_refused_by_name_and_audited_once() {
        let (_dir, shared) = relay_down();
        let code = SecretString::new("000000".into());
        let answered = answer(&shared, caller(0), alice(), "c\0".into(), code.clone()).await;
        assert_eq!(answered, refused("challenge"));
        let rows = rows_of(&shared, "refused_caller");
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].user.as_deref(), Some("alice"));
        assert_eq!(
            rows[0].detail.as_deref(),
            Some("challenge holds a NUL byte")
        );
        // A login field with a NUL as well: that one is named, in one row.
        let both = LoginContext {
            user: "ali\0ce".into(),
            ..alice()
        };
        let answered = answer(&shared, caller(0), both, "c\0".into(), code).await;
        assert_eq!(answered, refused("user"));
        assert_eq!(rows_of(&shared, "refused_caller").len(), 2);
        assert_eq!(shared.store().audit_since(0, 100).unwrap().len(), 2);
    }

    #[test]
    fn the_first_field_with_a_nul_byte_is_named() {
        let mut login = alice();
        assert_eq!(nul_field(&login), None);
        login.tty = Some("pts/0\0".into());
        assert_eq!(nul_field(&login), Some("tty"));
        login.protocol = Some("\0".into());
        login.service = "sshd\0".into();
        assert_eq!(nul_field(&login), Some("service"));
    }

    /// An over-long field is refused as before, without a row, even when it holds a NUL too:
    /// nothing unbounded is stored.
    #[tokio::test]
    async fn an_over_long_field_is_refused_without_a_row() {
        let (_dir, shared) = relay_down();
        let long = LoginContext {
            rhost: Some(format!("\0{}", "h".repeat(MAX_FIELD_LEN))),
            ..alice()
        };
        let answer = begin_as_root(&shared, long).await;
        assert_eq!(
            answer,
            Response::Error {
                message: format!("rhost is longer than {MAX_FIELD_LEN} bytes")
            }
        );
        assert!(shared.store().audit_since(0, 100).unwrap().is_empty());
    }

    #[test]
    fn over_long_fields_are_refused() {
        let mut login = LoginContext {
            user: "a".repeat(MAX_FIELD_LEN + 1),
            service: "sshd".into(),
            rhost: None,
            tty: None,
            protocol: None,
        };
        assert!(check_fields(&login).is_err());
        login.user = "alice".into();
        assert!(check_fields(&login).is_ok());
        login.rhost = Some("h".repeat(MAX_FIELD_LEN + 1));
        assert!(check_fields(&login).is_err());
    }
}
