//! Bulk changes: importing a CSV of users, and turning the code on for everyone (or a group)
//! with an address. Each is one transaction: all of it happens, or none.

use common::wire_admin::{AdminResponse, ImportRow, LineProblem, RefuseReason, Skipped};
use nix::unistd::Group;

use super::view;
use super::{Ctx, record, refused, store_failed};
use crate::audit::Event;
use crate::policy;
use crate::store::{self, StoreError, UserRecord};

/// `import`: every row is checked; with bad rows, nothing changes unless `partial`; with
/// `dry_run`, nothing changes at all.
pub fn import(ctx: &Ctx<'_>, rows: &[ImportRow], partial: bool, dry_run: bool) -> AdminResponse {
    let mut problems = Vec::new();
    let mut good: Vec<(usize, UserRecord)> = Vec::new();
    for row in rows {
        match check_row(row) {
            Err(message) => problems.push(LineProblem {
                line: row.line,
                message,
            }),
            Ok(record) => {
                if let Some((first, _)) = good.iter().find(|(_, r)| r.name == record.name) {
                    problems.push(LineProblem {
                        line: row.line,
                        message: format!("{} is already on line {first}", record.name),
                    });
                } else {
                    good.push((row.line, record));
                }
            }
        }
    }
    if dry_run || (!problems.is_empty() && !partial) {
        return AdminResponse::Imported {
            imported: 0,
            problems,
            applied: false,
        };
    }
    let records: Vec<UserRecord> = good.into_iter().map(|(_, r)| r).collect();
    let mut store = ctx.shared.store();
    let imported = store::atomically(&mut store, |store| {
        store.upsert_users(&records)?;
        let detail = format!("imported={} bad_lines={}", records.len(), problems.len());
        record::note(
            store,
            ctx.now,
            Event::UsersImported,
            None,
            ctx.caller,
            Some(&detail),
        )
    });
    match imported {
        Ok(()) => {}
        Err(StoreError::InvalidUser(why)) => return refused(RefuseReason::Invalid, why),
        Err(e) => return store_failed(&e),
    }
    AdminResponse::Imported {
        imported: records.len(),
        problems,
        applied: true,
    }
}

fn check_row(row: &ImportRow) -> Result<UserRecord, String> {
    view::check_user_name(&row.user)?;
    let email = view::check_email(&row.email)?;
    let protocols = row
        .protocols
        .as_ref()
        .map(|p| view::check_protocols(p, None))
        .transpose()?;
    Ok(UserRecord {
        name: row.user.clone(),
        email: Some(email.as_str().to_string()),
        enabled: row.enabled.unwrap_or(false),
        protocols,
        language: None,
        phone: None,
    })
}

/// `enable --all` (every user otpd has a record of) or `enable --group GROUP` (the group's
/// members, and recorded users in it): the code goes on for each who has an address.
pub fn enable_all(ctx: &Ctx<'_>, group: Option<&str>) -> AdminResponse {
    let accounts = ctx.accounts;
    // Who is in the group is asked of NSS with the store unlocked (NSS may be slow: LDAP,
    // SSSD); the records are read again, locked, before they are changed.
    let listed = ctx.shared.store().list_users();
    let records = match listed {
        Ok(records) => records,
        Err(e) => return store_failed(&e),
    };
    let mut candidates: Vec<String> = Vec::new();
    match group {
        None => candidates.extend(records.iter().map(|r| r.name.clone())),
        Some(group) => {
            let members = match Group::from_name(group) {
                Ok(Some(g)) => g.mem,
                Ok(None) | Err(_) => {
                    return refused(
                        RefuseReason::NotFound,
                        format!("there is no group {group:?} on this machine"),
                    );
                }
            };
            candidates.extend(members);
            for r in &records {
                if accounts.groups_of(&r.name).iter().any(|g| g == group) {
                    candidates.push(r.name.clone());
                }
            }
        }
    }
    candidates.sort();
    candidates.dedup();
    let mut store = ctx.shared.store();
    let records = match store.list_users() {
        Ok(records) => records,
        Err(e) => return store_failed(&e),
    };
    let config = &ctx.active.config;
    let mut changed = Vec::new();
    let mut skipped = Vec::new();
    for name in candidates {
        let current = records.iter().find(|r| r.name == name);
        if policy::address_for(config, &name, current).is_none() {
            skipped.push(Skipped {
                user: name,
                reason: "no address on file (set one with `otpctl user set-email`)".into(),
            });
            continue;
        }
        match current {
            Some(r) if r.enabled => skipped.push(Skipped {
                user: name,
                reason: "already on".into(),
            }),
            Some(r) => changed.push(UserRecord {
                enabled: true,
                ..r.clone()
            }),
            None => changed.push(UserRecord {
                name,
                email: None,
                enabled: true,
                protocols: None,
                language: None,
                phone: None,
            }),
        }
    }
    let enabled = store::atomically(&mut store, |store| {
        store.upsert_users(&changed)?;
        let detail = format!("group={} enabled={}", group.unwrap_or("-"), changed.len());
        record::note(
            store,
            ctx.now,
            Event::UsersEnabled,
            None,
            ctx.caller,
            Some(&detail),
        )
    });
    if let Err(e) = enabled {
        return store_failed(&e);
    }
    AdminResponse::EnabledAll {
        enabled: changed.into_iter().map(|r| r.name).collect(),
        skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: &str, email: &str) -> ImportRow {
        ImportRow {
            line: 1,
            user: user.into(),
            email: email.into(),
            enabled: None,
            protocols: None,
        }
    }

    #[test]
    fn a_good_row_becomes_a_disabled_record_for_all_protocols() {
        let r = check_row(&row("alice", "alice@example.com")).unwrap();
        assert!(!r.enabled);
        assert_eq!(r.protocols, None);
    }

    #[test]
    fn bad_addresses_names_and_protocols_are_reported() {
        assert!(check_row(&row("alice", "not-an-address")).is_err());
        assert!(check_row(&row("a b", "a@example.com")).is_err());
        let mut bad = row("alice", "alice@example.com");
        bad.protocols = Some(vec!["shh".into()]);
        assert!(check_row(&bad).unwrap_err().contains("unknown protocol"));
    }
}
