//! `otpctl breakglass grant|revoke|list` (issue #16). Granting and revoking are root's alone,
//! not the admin group's: a grant switches the second factor off for a user, which an admin
//! (who cannot change addresses to their own) must not be able to do for themselves.

use common::text::escape_for_log;
use common::timefmt;
use common::wire_admin::{AdminResponse, BreakGlassView, RefuseReason};

use super::{Ctx, record, refused, store_failed};
use crate::audit::Event;
use crate::breakglass::{Cidr, MAX_MINUTES, note_expired};
use crate::store::{self, BreakGlass, BreakGlassLookup};

/// Refuses (and records the refusal) unless the caller is root.
fn require_root(ctx: &Ctx<'_>, command: &str) -> Result<(), AdminResponse> {
    if ctx.caller.uid == 0 {
        return Ok(());
    }
    Err(super::authz::refuse(
        ctx,
        command,
        format!("`otpctl {command}` is for root only (not the admin group)."),
    ))
}

/// Grants `user` a break-glass for `minutes`, from `from` when given.
pub(super) fn grant(ctx: &Ctx<'_>, user: &str, minutes: u32, from: Option<&str>) -> AdminResponse {
    if let Err(refusal) = require_root(ctx, "breakglass grant") {
        return refusal;
    }
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return refused(
            RefuseReason::Invalid,
            format!("--minutes must be from 1 to {MAX_MINUTES}"),
        );
    }
    if user.is_empty() || user.len() > common::text::MAX_FIELD_LEN {
        return refused(RefuseReason::Invalid, "give a user name".into());
    }
    let cidr = match from.map(Cidr::parse).transpose() {
        Ok(cidr) => cidr,
        Err(e) => return refused(RefuseReason::Invalid, e.to_string()),
    };
    let grant = BreakGlass {
        user: user.to_string(),
        cidr: cidr.map(|c| c.to_string()),
        granted_by: ctx.caller.uid,
        granted_at: ctx.now,
        expires_at: ctx.now.saturating_add(i64::from(minutes) * 60),
    };
    let from_text = grant.cidr.as_deref().unwrap_or("anywhere");
    let mut store = ctx.shared.store();
    // The grant and its audit row are stored together, or neither is.
    let granted = store::atomically(&mut store, |store| {
        // An expired grant about to be replaced has its expiry logged first: never, otherwise.
        if let BreakGlassLookup::Expired(expired) = store.breakglass_for(user, ctx.now)? {
            note_expired(store, ctx.now, &expired)?;
        }
        store.grant_breakglass(&grant)?;
        let detail = format!(
            "minutes={minutes} from={from_text} until={}",
            timefmt::utc(grant.expires_at)
        );
        let event = Event::BreakglassGranted;
        record::note(store, ctx.now, event, Some(user), ctx.caller, Some(&detail))
    });
    if let Err(e) = granted {
        return store_failed(&e);
    }
    tracing::warn!(
        "break-glass granted: user {} passes the code step from {} until {} (uid {})",
        escape_for_log(user),
        escape_for_log(from_text),
        timefmt::utc(grant.expires_at),
        ctx.caller.uid
    );
    AdminResponse::Done {
        message: format!(
            "Break-glass for {user}: logins pass the code step from {from_text} until {} ({minutes} min). End it with `otpctl breakglass revoke {user}`.",
            timefmt::utc(grant.expires_at)
        ),
        user: None,
    }
}

/// Ends `user`'s grant now.
pub(super) fn revoke(ctx: &Ctx<'_>, user: &str) -> AdminResponse {
    if let Err(refusal) = require_root(ctx, "breakglass revoke") {
        return refusal;
    }
    let mut store = ctx.shared.store();
    // The revocation and its audit row are stored together, or neither is.
    let revoked = store::atomically(&mut store, |store| {
        let found = store.revoke_breakglass(user)?;
        match &found {
            Some(grant) if grant.expires_at > ctx.now => {
                let detail = format!("was_until={}", timefmt::utc(grant.expires_at));
                let event = Event::BreakglassRevoked;
                record::note(store, ctx.now, event, Some(user), ctx.caller, Some(&detail))?;
            }
            // The row is gone now: its expiry is logged here or never.
            Some(expired) => note_expired(store, ctx.now, expired)?,
            None => {}
        }
        Ok(found)
    });
    let found = match revoked {
        Ok(found) => found,
        Err(e) => return store_failed(&e),
    };
    match found {
        Some(grant) if grant.expires_at > ctx.now => {
            tracing::warn!(
                "break-glass revoked: user {} needs login codes again (uid {})",
                escape_for_log(user),
                ctx.caller.uid
            );
            AdminResponse::Done {
                message: format!("Break-glass for {user} revoked."),
                user: None,
            }
        }
        Some(_) => refused(
            RefuseReason::NotFound,
            format!("{user}'s break-glass grant had already expired"),
        ),
        None => refused(
            RefuseReason::NotFound,
            format!("{user} has no break-glass grant"),
        ),
    }
}

/// The grants that hold now.
pub(super) fn list(ctx: &Ctx<'_>) -> AdminResponse {
    match views(ctx) {
        Ok(grants) => AdminResponse::BreakGlass { grants },
        Err(refusal) => refusal,
    }
}

/// The grants that hold now, as otpctl shows them (also in `otpctl status`).
pub(super) fn views(ctx: &Ctx<'_>) -> Result<Vec<BreakGlassView>, AdminResponse> {
    let store = ctx.shared.store();
    let grants = store
        .live_breakglass(ctx.now)
        .map_err(|e| store_failed(&e))?;
    Ok(grants
        .into_iter()
        .map(|g| BreakGlassView {
            user: g.user,
            from: g.cidr,
            granted_by: g.granted_by,
            granted_at: g.granted_at,
            expires_at: g.expires_at,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::SystemClock;

    use crate::state::Shared;
    use crate::store::AuditFilter;
    use crate::test_support::{caller, config};

    fn daemon() -> (tempfile::TempDir, Shared) {
        let dir = tempfile::tempdir().unwrap();
        let config = config("[daemon]\nadmin_group = \"otpadmin\"");
        let shared = crate::test_support::shared(dir.path(), config, Arc::new(SystemClock));
        (dir, shared)
    }

    fn events(shared: &Shared, event: &str) -> usize {
        let filter = AuditFilter {
            user: None,
            event: Some(event.into()),
            since: 0,
            limit: 100,
            before: None,
        };
        shared.store().audit_filtered(&filter).unwrap().len()
    }

    #[test]
    fn only_root_may_grant_or_revoke_not_the_admin_group_nor_a_user_and_refusals_are_audited() {
        let (_dir, shared) = daemon();
        // uid 1000 is alice, in the admin group; 1001 is bob, a plain user.
        for uid in [1000, 1001] {
            let ctx = Ctx::new(&shared, caller(uid));
            let answer = grant(&ctx, "root", 30, None);
            assert!(
                matches!(
                    answer,
                    AdminResponse::Refused {
                        reason: RefuseReason::NotAllowed,
                        ..
                    }
                ),
                "uid {uid}: {answer:?}"
            );
            let answer = revoke(&ctx, "root");
            assert!(
                matches!(
                    answer,
                    AdminResponse::Refused {
                        reason: RefuseReason::NotAllowed,
                        ..
                    }
                ),
                "uid {uid}: {answer:?}"
            );
        }
        assert!(shared.store().live_breakglass(0).unwrap().is_empty());
        assert_eq!(events(&shared, "admin_refused"), 4);
        assert_eq!(events(&shared, "breakglass_granted"), 0);
    }

    #[test]
    fn root_grants_for_1_to_240_minutes_from_a_valid_network_and_revokes() {
        let (_dir, shared) = daemon();
        let ctx = Ctx::new(&shared, caller(0));
        for minutes in [0, 241] {
            assert!(matches!(
                grant(&ctx, "root", minutes, None),
                AdminResponse::Refused {
                    reason: RefuseReason::Invalid,
                    ..
                }
            ));
        }
        assert!(matches!(
            grant(&ctx, "root", 5, Some("not-a-network")),
            AdminResponse::Refused {
                reason: RefuseReason::Invalid,
                ..
            }
        ));
        assert!(matches!(
            grant(&ctx, "root", 240, Some("192.0.2.0/24")),
            AdminResponse::Done { .. }
        ));
        let AdminResponse::BreakGlass { grants } = list(&ctx) else {
            panic!("no list");
        };
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].from.as_deref(), Some("192.0.2.0/24"));
        assert_eq!(grants[0].expires_at - grants[0].granted_at, 240 * 60);
        assert!(matches!(revoke(&ctx, "root"), AdminResponse::Done { .. }));
        assert!(matches!(
            revoke(&ctx, "root"),
            AdminResponse::Refused {
                reason: RefuseReason::NotFound,
                ..
            }
        ));
        assert_eq!(events(&shared, "breakglass_granted"), 1);
        assert_eq!(events(&shared, "breakglass_revoked"), 1);
    }

    /// Issue #18: grants and revokes were audited through the login's writer, as a login by a
    /// made-up subject; they are root's otpctl changes like any other.
    #[test]
    fn a_grant_and_a_revoke_are_audited_as_roots_otpctl_changes() {
        let (_dir, shared) = daemon();
        let ctx = Ctx::new(&shared, caller(0));
        let lines = crate::test_support::audit_lines(|| {
            assert!(matches!(
                grant(&ctx, "bob", 5, Some("192.0.2.0/24")),
                AdminResponse::Done { .. }
            ));
            assert!(matches!(revoke(&ctx, "bob"), AdminResponse::Done { .. }));
        });
        let until = timefmt::utc(ctx.now + 300);
        assert_eq!(
            lines,
            [
                format!(
                    "event=breakglass_granted user=bob service=otpctl caller_uid=0 detail=minutes\\x3d5\\x20from\\x3d192.0.2.0/24\\x20until\\x3d{}",
                    until.replace(' ', "\\x20")
                ),
                format!(
                    "event=breakglass_revoked user=bob service=otpctl caller_uid=0 detail=was_until\\x3d{}",
                    until.replace(' ', "\\x20")
                ),
            ]
        );
        let mut store = shared.store();
        let rows = store.audit_since(0, 10).unwrap();
        let events: Vec<_> = rows.iter().map(|r| r.event.as_str()).collect();
        assert_eq!(events, ["breakglass_revoked", "breakglass_granted"]);
        for row in &rows {
            assert_eq!(row.user.as_deref(), Some("bob"), "{row:?}");
            assert_eq!(row.service.as_deref(), Some("otpctl"), "{row:?}");
            assert_eq!(row.caller_uid, Some(0), "{row:?}");
            assert_eq!(
                (row.protocol.as_deref(), row.rhost.as_deref()),
                (None, None)
            );
        }
    }

    #[test]
    fn a_grant_whose_audit_row_cannot_be_written_is_not_stored() {
        let (dir, shared) = daemon();
        drop(shared);
        crate::test_support::refuse_audit_rows(dir.path());
        let config = config("[daemon]\nadmin_group = \"otpadmin\"");
        let shared = crate::test_support::shared(dir.path(), config, Arc::new(SystemClock));
        let ctx = Ctx::new(&shared, caller(0));
        let answer = grant(&ctx, "bob", 5, None);
        assert!(
            matches!(
                answer,
                AdminResponse::Refused {
                    reason: RefuseReason::Failed,
                    ..
                }
            ),
            "{answer:?}"
        );
        assert!(shared.store().live_breakglass(ctx.now).unwrap().is_empty());
    }

    /// Root's grant that ran out a minute before `now`.
    fn expired_root_grant(now: i64) -> BreakGlass {
        BreakGlass {
            user: "root".into(),
            cidr: None,
            granted_by: 0,
            granted_at: now - 120,
            expires_at: now - 60,
        }
    }

    #[test]
    fn revoking_an_expired_grant_logs_its_expiry_once_and_says_it_had_expired() {
        let (_dir, shared) = daemon();
        let ctx = Ctx::new(&shared, caller(0));
        shared
            .store()
            .grant_breakglass(&expired_root_grant(ctx.now))
            .unwrap();
        let answer = revoke(&ctx, "root");
        assert!(
            matches!(&answer, AdminResponse::Refused { reason: RefuseReason::NotFound, message } if message.contains("already expired")),
            "{answer:?}"
        );
        assert_eq!(events(&shared, "breakglass_expired"), 1);
        assert_eq!(events(&shared, "breakglass_revoked"), 0);
        crate::breakglass::expire_all(&mut shared.store(), ctx.now);
        assert_eq!(events(&shared, "breakglass_expired"), 1);
    }

    #[test]
    fn a_new_grant_replacing_an_expired_one_logs_the_old_ones_expiry_first() {
        let (_dir, shared) = daemon();
        let ctx = Ctx::new(&shared, caller(0));
        shared
            .store()
            .grant_breakglass(&expired_root_grant(ctx.now))
            .unwrap();
        assert!(matches!(
            grant(&ctx, "root", 5, None),
            AdminResponse::Done { .. }
        ));
        assert_eq!(events(&shared, "breakglass_expired"), 1);
        assert_eq!(events(&shared, "breakglass_granted"), 1);
    }
}
