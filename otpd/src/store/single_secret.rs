//! Codes for single-secret protocols (FTP, HTTP Basic, WebDAV), whose clients send one secret:
//! the password, or the password with the code appended.
//!
//! There is no challenge id to answer: the code is checked against the user's live code for the
//! protocol, under exactly the rules of an interactive answer. A success leaves a reuse grant for
//! the user, PAM service and remote host, so a WebDAV client that sends the same
//! `password || code` with every request keeps working for `reuse_window_seconds`.

use common::secret::SecretString;
use rand::{CryptoRng, RngCore};
use rusqlite::{Connection, OptionalExtension, params};

use super::codes::{Recovery, host, latest_live, verify_in};
use super::{IssueRequest, Limits, SqliteStore, StoreError, VerifyOutcome, lockouts};
use crate::code;

impl SqliteStore {
    /// True when this login's secret is expected to end with a code: the user has a live code
    /// for this protocol, or a reuse grant holds for this user, service and host. Changes
    /// nothing.
    pub fn expects_code(
        &self,
        login: &IssueRequest,
        limits: &Limits,
        now: i64,
    ) -> Result<bool, StoreError> {
        let live = latest_live(&self.conn, login.user, limits, now)?
            .is_some_and(|live| live.protocol == login.protocol);
        Ok(live || grant(&self.conn, login, now)?.is_some())
    }

    /// Checks a code that came appended to the password. A matching reuse grant succeeds
    /// without touching counters; otherwise the user's live code for the protocol is answered
    /// under the usual rules (attempts, lockouts, single use), and a success leaves a grant for
    /// `reuse_secs` (none when 0).
    #[allow(clippy::too_many_arguments)] // One login's facts plus the rules that apply.
    pub fn verify_appended<R: CryptoRng + RngCore>(
        &mut self,
        login: &IssueRequest,
        code: &SecretString,
        limits: &Limits,
        reuse_secs: i64,
        now: i64,
        rng: &mut R,
    ) -> Result<VerifyOutcome, StoreError> {
        limits.check()?;
        let rhost = host(login.rhost);
        let tx = Self::immediate(&mut self.conn)?;
        if let Some(until) = lockouts::locked_until(&tx, login.user, rhost, now)? {
            return Ok(VerifyOutcome::LockedOut { until });
        }
        if let Some((salt, mac)) = grant(&tx, login, now)? {
            if code::mac_matches(&self.key, &salt, &grant_label(login), code, &mac)? {
                return Ok(VerifyOutcome::Success);
            }
        }
        // No live code for this protocol: answering the unknown challenge "" gives Dead and
        // counts the failure, like any answer to a dead code.
        let challenge = latest_live(&tx, login.user, limits, now)?
            .filter(|live| live.protocol == login.protocol)
            .map(|live| live.challenge)
            .unwrap_or_default();
        let outcome = verify_in(
            &tx,
            &self.key,
            &challenge,
            login.user,
            login.protocol,
            rhost,
            code,
            limits,
            now,
            Recovery::Refused,
        )?;
        if outcome == VerifyOutcome::Success && reuse_secs > 0 {
            let salt = code::new_salt(rng);
            let mac = code::code_mac(&self.key, &salt, &grant_label(login), code.expose())?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO reuse_grants (user, service, rhost, salt, mac, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                login.user,
                login.service,
                rhost.unwrap_or(""),
                &salt[..],
                &mac[..],
                now.saturating_add(reuse_secs)
            ])?;
        }
        tx.commit()?;
        Ok(outcome)
    }
}

/// What a grant's MAC is bound to besides the code: the user, service and host it holds for.
pub(super) fn grant_label(login: &IssueRequest) -> String {
    format!(
        "reuse\0{}\0{}\0{}",
        login.user,
        login.service,
        host(login.rhost).unwrap_or("")
    )
}

/// A stored grant: its salt and MAC.
type Grant = (Vec<u8>, Vec<u8>);

/// The salt and MAC of the grant in force for this login, if any.
fn grant(conn: &Connection, login: &IssueRequest, now: i64) -> Result<Option<Grant>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT salt, mac FROM reuse_grants
             WHERE user = ?1 AND service = ?2 AND rhost = ?3 AND expires_at > ?4",
        )?
        .query_row(
            params![
                login.user,
                login.service,
                host(login.rhost).unwrap_or(""),
                now
            ],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    const WINDOW: i64 = 300;

    fn ftp_login(rhost: Option<&str>) -> IssueRequest<'_> {
        IssueRequest {
            user: "alice",
            protocol: "ftp",
            service: "vsftpd",
            rhost,
        }
    }

    fn issue_ftp(store: &mut SqliteStore, now: i64) -> SecretString {
        let outcome = store
            .issue(
                &IssueRequest {
                    user: "alice",
                    protocol: "ftp",
                    service: "vsftpd",
                    rhost: Some("192.0.2.1"),
                },
                &limits(),
                now,
                &mut rng(),
            )
            .unwrap();
        secret_of(&outcome)
    }

    fn verify(
        store: &mut SqliteStore,
        login: &IssueRequest,
        code: &SecretString,
        now: i64,
    ) -> VerifyOutcome {
        store
            .verify_appended(login, code, &limits(), WINDOW, now, &mut rng())
            .unwrap()
    }

    #[test]
    fn no_code_is_expected_before_one_was_mailed() {
        let (_dir, store) = open_store();
        assert!(!store.expects_code(&ftp_login(None), &limits(), T0).unwrap());
    }

    #[test]
    fn a_live_code_for_the_protocol_is_expected_and_accepted_once() {
        let (_dir, mut store) = open_store();
        let code = issue_ftp(&mut store, T0);
        let login = ftp_login(Some("192.0.2.1"));
        assert!(store.expects_code(&login, &limits(), T0 + 1).unwrap());
        assert_eq!(
            verify(&mut store, &login, &code, T0 + 1),
            VerifyOutcome::Success
        );
    }

    #[test]
    fn a_code_for_another_protocol_is_not_expected_and_not_accepted() {
        let (_dir, mut store) = open_store();
        let code = issue_ftp(&mut store, T0);
        let http = IssueRequest {
            protocol: "http",
            ..ftp_login(None)
        };
        assert!(!store.expects_code(&http, &limits(), T0 + 1).unwrap());
        assert_eq!(
            verify(&mut store, &http, &code, T0 + 1),
            VerifyOutcome::Dead
        );
    }

    #[test]
    fn the_grant_lets_the_same_client_reuse_the_code_within_the_window() {
        let (_dir, mut store) = open_store();
        let code = issue_ftp(&mut store, T0);
        let login = ftp_login(Some("192.0.2.1"));
        assert_eq!(
            verify(&mut store, &login, &code, T0 + 1),
            VerifyOutcome::Success
        );
        // The code itself is used up; the grant carries the next requests.
        assert!(store.expects_code(&login, &limits(), T0 + 2).unwrap());
        assert_eq!(
            verify(&mut store, &login, &code, T0 + 2),
            VerifyOutcome::Success
        );
        assert_eq!(
            verify(&mut store, &login, &code, T0 + WINDOW),
            VerifyOutcome::Success
        );
        // After the window it is over.
        assert!(
            !store
                .expects_code(&login, &limits(), T0 + 1 + WINDOW)
                .unwrap()
        );
        assert_eq!(
            verify(&mut store, &login, &code, T0 + 1 + WINDOW),
            VerifyOutcome::Dead
        );
    }

    #[test]
    fn the_grant_is_bound_to_host_and_service() {
        let (_dir, mut store) = open_store();
        let code = issue_ftp(&mut store, T0);
        let login = ftp_login(Some("192.0.2.1"));
        assert_eq!(
            verify(&mut store, &login, &code, T0 + 1),
            VerifyOutcome::Success
        );
        let other_host = ftp_login(Some("198.51.100.9"));
        assert_eq!(
            verify(&mut store, &other_host, &code, T0 + 2),
            VerifyOutcome::Dead
        );
        let other_service = IssueRequest {
            service: "proftpd",
            ..login
        };
        assert_eq!(
            verify(&mut store, &other_service, &code, T0 + 2),
            VerifyOutcome::Dead
        );
    }

    #[test]
    fn a_wrong_appended_code_counts_like_a_wrong_answer() {
        let (_dir, mut store) = open_store();
        let _code = issue_ftp(&mut store, T0);
        let login = ftp_login(None);
        let wrong = SecretString::new("000000".into());
        let first = verify(&mut store, &login, &wrong, T0 + 1);
        assert!(
            matches!(first, VerifyOutcome::Wrong { attempts_left: 4 }),
            "{first:?}"
        );
    }

    #[test]
    fn no_grant_is_left_when_the_window_is_zero() {
        let (_dir, mut store) = open_store();
        let code = issue_ftp(&mut store, T0);
        let login = ftp_login(None);
        let outcome = store
            .verify_appended(&login, &code, &limits(), 0, T0 + 1, &mut rng())
            .unwrap();
        assert_eq!(outcome, VerifyOutcome::Success);
        assert_eq!(
            verify(&mut store, &login, &code, T0 + 2),
            VerifyOutcome::Dead
        );
    }
}
