//! Per-user records managed with `otpctl`: where to mail the code, whether the second factor
//! is on, and for which protocols.

use common::config::Language;
use common::service::Protocol;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, StoreError};

/// One user's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The login name (primary key).
    pub name: String,
    /// Where codes are mailed; `None` leaves it to the configured lookup.
    pub email: Option<String>,
    /// Whether the second factor applies to this user at all.
    pub enabled: bool,
    /// Protocols that require the code for this user; `None` means all enabled protocols.
    /// `Some` of an empty list is kept distinct from `None`: it means none.
    pub protocols: Option<Vec<String>>,
    /// The language of the user's login texts; `None` leaves it to the user's profile.
    pub language: Option<Language>,
    /// The phone number webhook channels send codes to (`otpctl user set-phone`), in E.164
    /// form; `None`: the user gets no code by phone.
    pub phone: Option<String>,
}

impl UserRecord {
    /// Refuses what could not round-trip or would silently weaken the rule: an empty name, or a
    /// protocol name that is not one otpd knows (a typo such as `shh` must not quietly mean
    /// "no code for ssh").
    pub(super) fn check(&self) -> Result<(), StoreError> {
        if self.name.is_empty() {
            return Err(StoreError::InvalidUser("the user name is empty".into()));
        }
        for protocol in self.protocols.iter().flatten() {
            if Protocol::parse(protocol).is_none() {
                return Err(StoreError::InvalidUser(format!(
                    "unknown protocol {protocol:?} for user {:?}",
                    self.name
                )));
            }
        }
        Ok(())
    }
}

impl SqliteStore {
    /// The record for `name`, if there is one.
    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        type Row = (
            Option<String>,
            bool,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let row: Option<Row> = self
            .conn
            .prepare_cached(
                "SELECT email, enabled, protocols, language, phone FROM users WHERE name = ?1",
            )?
            .query_row(params![name], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            })
            .optional()?;
        Ok(
            row.map(|(email, enabled, protocols, language, phone)| UserRecord {
                name: name.to_string(),
                email,
                enabled,
                protocols: protocols.map(|list| split_protocols(&list)),
                // Written only from a `Language`; a code this build has no texts in reads as none.
                language: language.as_deref().and_then(Language::of),
                phone,
            }),
        )
    }

    /// Creates or replaces the record for `record.name`, keeping its creation time.
    ///
    /// The created/updated times come from SQLite's clock: they are for the admin's
    /// information, and for a merge into PostgreSQL of a host merged before, which takes a
    /// record not updated since that merge as the database's (both times are this host's
    /// clock).
    pub fn upsert_user(&mut self, record: &UserRecord) -> Result<(), StoreError> {
        record.check()?;
        let protocols = record.protocols.as_ref().map(|list| list.join(","));
        self.conn
            .prepare_cached(
                "INSERT INTO users
                     (name, email, enabled, protocols, language, phone, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, unixepoch(), unixepoch())
                 ON CONFLICT (name) DO UPDATE SET
                     email = excluded.email,
                     enabled = excluded.enabled,
                     protocols = excluded.protocols,
                     language = excluded.language,
                     phone = excluded.phone,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![
                record.name,
                record.email,
                record.enabled,
                protocols,
                record.language.map(Language::code),
                record.phone
            ])?;
        Ok(())
    }

    /// Deletes the record for `name`, and the user's recovery codes with it; true if there
    /// was a record.
    pub fn remove_user(&mut self, name: &str) -> Result<bool, StoreError> {
        let tx = Self::immediate(&mut self.conn)?;
        let removed = tx
            .prepare_cached("DELETE FROM users WHERE name = ?1")?
            .execute(params![name])?;
        if removed > 0 {
            tx.prepare_cached("DELETE FROM recovery_codes WHERE user = ?1")?
                .execute(params![name])?;
        }
        tx.commit()?;
        Ok(removed > 0)
    }
}

pub(super) fn split_protocols(list: &str) -> Vec<String> {
    if list.is_empty() {
        return Vec::new();
    }
    list.split(',').map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn a_user_round_trips_with_all_protocols() {
        let (_dir, mut store) = open_store();
        let record = user_record("alice");
        store.upsert_user(&record).unwrap();
        assert_eq!(store.user("alice").unwrap(), Some(record));
    }

    #[test]
    fn a_protocol_list_round_trips_and_an_empty_one_stays_empty() {
        let (_dir, mut store) = open_store();
        for protocols in [vec!["ssh".to_string(), "sftp".to_string()], vec![]] {
            let record = UserRecord {
                protocols: Some(protocols),
                ..user_record("alice")
            };
            store.upsert_user(&record).unwrap();
            assert_eq!(store.user("alice").unwrap(), Some(record));
        }
    }

    #[test]
    fn an_upsert_replaces_the_record_and_keeps_the_creation_time() {
        let (_dir, mut store) = open_store();
        store.upsert_user(&user_record("alice")).unwrap();
        store
            .conn
            .execute("UPDATE users SET created_at = 1, updated_at = 1", [])
            .unwrap();
        let changed = UserRecord {
            email: None,
            enabled: false,
            ..user_record("alice")
        };
        store.upsert_user(&changed).unwrap();
        assert_eq!(store.user("alice").unwrap(), Some(changed));
        assert_eq!(store.count_rows("SELECT created_at FROM users"), 1);
        assert!(store.count_rows("SELECT updated_at FROM users") > 1);
    }

    #[test]
    fn an_unknown_user_has_no_record() {
        let (_dir, store) = open_store();
        assert_eq!(store.user("nobody").unwrap(), None);
    }

    #[test]
    fn removing_reports_whether_there_was_a_record() {
        let (_dir, mut store) = open_store();
        store.upsert_user(&user_record("alice")).unwrap();
        assert!(store.remove_user("alice").unwrap());
        assert!(!store.remove_user("alice").unwrap());
        assert_eq!(store.user("alice").unwrap(), None);
    }

    #[test]
    fn an_unknown_protocol_or_empty_name_is_refused() {
        let (_dir, mut store) = open_store();
        let typo = UserRecord {
            protocols: Some(vec!["shh".into()]),
            ..user_record("alice")
        };
        assert!(matches!(
            store.upsert_user(&typo),
            Err(StoreError::InvalidUser(_))
        ));
        let smuggled = UserRecord {
            protocols: Some(vec!["ssh,ftp".into()]),
            ..user_record("alice")
        };
        assert!(matches!(
            store.upsert_user(&smuggled),
            Err(StoreError::InvalidUser(_))
        ));
        assert!(matches!(
            store.upsert_user(&user_record("")),
            Err(StoreError::InvalidUser(_))
        ));
        assert_eq!(store.user("alice").unwrap(), None);
    }
}
