//! Who may run admin commands: root, and members of `[daemon] admin_group`. Trusted callers
//! (web servers acting for their users) are not admins.

use common::wire_admin::{AdminResponse, RefuseReason};

use super::{Ctx, record, refused};
use crate::accounts::Accounts;
use crate::audit::Event;
use crate::caller::Caller;

/// True when `caller` may run admin commands.
pub fn is_admin(caller: Caller, admin_group: Option<&str>, accounts: &dyn Accounts) -> bool {
    if caller.uid == 0 {
        return true;
    }
    let Some(group) = admin_group else {
        return false;
    };
    accounts
        .user_name(caller.uid)
        .is_some_and(|name| accounts.groups_of(&name).iter().any(|g| g == group))
}

/// True when the caller of `ctx` is an admin.
pub(crate) fn caller_is_admin(ctx: &Ctx<'_>) -> bool {
    is_admin(
        ctx.caller,
        ctx.active.config.daemon.admin_group.as_deref(),
        ctx.shared.accounts.as_ref(),
    )
}

/// Refuses (and records the refusal) unless the caller is an admin.
pub(crate) fn require_admin(ctx: &Ctx<'_>, command: &str) -> Result<(), AdminResponse> {
    if caller_is_admin(ctx) {
        return Ok(());
    }
    let how = match &ctx.active.config.daemon.admin_group {
        Some(group) => format!("root or members of the group {group:?}"),
        None => "root (no admin_group is configured)".to_string(),
    };
    Err(refuse(
        ctx,
        command,
        format!(
            "`otpctl {command}` is for admins: only {how} may run it. For your own account use `otpctl status`, `otpctl enable` or `otpctl disable`."
        ),
    ))
}

/// Records `command` as refused to the caller (`admin_refused`) and answers with `message`.
pub(crate) fn refuse(ctx: &Ctx<'_>, command: &str, message: String) -> AdminResponse {
    let mut store = ctx.shared.store();
    // Nothing was changed, so there is nothing to take back: a row that cannot be written is
    // logged, and the refusal stands.
    let _ = record::note(
        &mut store,
        ctx.now,
        Event::AdminRefused,
        None,
        ctx.caller,
        Some(command),
    );
    refused(RefuseReason::NotAllowed, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{FakeAccounts, caller};

    #[test]
    fn root_is_always_an_admin() {
        assert!(is_admin(caller(0), None, &FakeAccounts));
    }

    #[test]
    fn members_of_the_admin_group_are_admins_and_others_are_not() {
        assert!(is_admin(caller(1000), Some("otpadmin"), &FakeAccounts));
        assert!(!is_admin(caller(1001), Some("otpadmin"), &FakeAccounts));
        assert!(!is_admin(caller(4242), Some("otpadmin"), &FakeAccounts));
    }

    #[test]
    fn without_an_admin_group_only_root_is_an_admin() {
        assert!(!is_admin(caller(1000), None, &FakeAccounts));
    }
}
