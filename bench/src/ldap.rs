//! Logins whose address comes from an LDAP directory (issue 19), against logins whose address is
//! in otpd's own table: a private slapd (the end-to-end tests' harness) holds users with `mail`
//! attributes, and a second otpd has one `[[directory.ldap]]` source on it and the table users.
//! A user's first login is cold (otpd asks slapd), the next one within `cache_ttl_seconds` is
//! served from otpd's cache, and a table user's login never asks slapd.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::paths;
use e2e_tests::slapd::{BASE, BIND_DN, Slapd};
use e2e_tests::stack::PamConfDir;

use crate::error::BenchError;
use crate::login::login;
use crate::loops::{self, Run, Until};
use crate::memory::Process;
use crate::scenarios::{self, Tally};
use crate::setup::{self, Setup};
use crate::stats::Summary;
use crate::suite;

/// The source's name, as the `issued` audit rows give it (`address_source=ldap:bench`).
const SOURCE: &str = "bench";
/// How long otpd keeps what the directory said of a user: far longer than a run.
const CACHE_TTL_SECONDS: u32 = 300;
/// Untimed logins of each kind before the timed ones, by users of their own.
const WARMUP: u64 = 20;

/// What the scenario measured.
#[derive(Debug, Clone, Copy)]
pub struct LdapResults {
    /// A user's first login: otpd connects to slapd, binds, searches.
    pub cold: Summary,
    /// The same user again, from otpd's cache.
    pub cached: Summary,
    /// A user whose address is in otpd's table.
    pub table: Summary,
}

/// The three kinds of login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cold,
    Cached,
    Table,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Cold => "LDAP, cold",
            Kind::Cached => "LDAP, cached",
            Kind::Table => "table",
        }
    }

    /// User `index` of this kind: the same directory user for a cold and a cached login.
    fn user(self, index: u64) -> String {
        match self {
            Kind::Cold | Kind::Cached => format!("ldap{index}"),
            Kind::Table => format!("table{index}"),
        }
    }

    /// Where user `index`'s code goes; the domain tells the directory's address from the
    /// table's, and neither is otpd's template.
    fn address(self, index: u64) -> String {
        match self {
            Kind::Cold | Kind::Cached => format!("{}@ldap.example.test", self.user(index)),
            Kind::Table => format!("{}@table.example.test", self.user(index)),
        }
    }

    /// The `issued` audit field a login of this kind must show.
    fn source(self) -> String {
        match self {
            Kind::Cold | Kind::Cached => format!("address_source=ldap:{SOURCE}"),
            Kind::Table => "address_source=table".into(),
        }
    }

    /// Searches slapd sees per login: only a cold login asks it.
    fn searches(self) -> u64 {
        u64::from(self == Kind::Cold)
    }
}

/// slapd with the users, and the otpd and PAM stack that use it. Dropping it stops otpd, then
/// slapd.
#[derive(Debug)]
struct Directory {
    otpd: Otpd,
    pam: PamConfDir,
    slapd: Slapd,
}

impl Directory {
    /// Starts slapd holding directory users `0..users`, an otpd mailing to `setup`'s sink with
    /// one LDAP source on slapd and table users `0..users`, and an `sshd` stack on that otpd.
    fn start(setup: &Setup, users: u64) -> Result<Directory, BenchError> {
        for program in ["/usr/sbin/slapd", "/usr/bin/ldapadd"] {
            if !Path::new(program).exists() {
                return Err(BenchError::Setup(format!(
                    "{program} is missing: tests/install-deps installs slapd and ldap-utils"
                )));
            }
        }
        let slapd = Slapd::start_without_tls();
        let mut ldif = String::new();
        for index in 0..users {
            let user = Kind::Cold.user(index);
            ldif.push_str(&format!(
                "dn: uid={user},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {user}\n\
                 cn: {user}\nsn: {user}\nmail: {}\n\n",
                Kind::Cold.address(index)
            ));
        }
        slapd.add(&ldif);
        let body = format!(
            "[[directory.ldap]]\nname = \"{SOURCE}\"\nurls = [\"{url}\"]\ntls = \"none\"\n\
             bind_dn = \"{BIND_DN}\"\nbind_password_file = \"{password}\"\nbase = \"{BASE}\"\n\
             filter = \"(uid={{user}})\"\ncache_ttl_seconds = {CACHE_TTL_SECONDS}\n\n{rest}",
            url = slapd.ldap_url(),
            password = slapd.password_file().display(),
            rest = setup::OTPD_LIMITS,
        );
        let otpd = Otpd::start(&TestConfig {
            daemon: String::new(),
            body,
            smtp_port: setup.sink_port(),
        });
        add_table_users(&otpd, users)?;
        let pam = setup.our_service_for(&otpd);
        Ok(Directory { otpd, pam, slapd })
    }

    /// Searches slapd has logged so far.
    fn searches(&self) -> u64 {
        self.slapd.log().matches(" SRCH base=").count() as u64
    }

    /// `issued` audit rows so far whose address came from where `kind`'s should.
    fn sourced(&self, kind: Kind) -> u64 {
        let source = kind.source();
        self.otpd
            .events("issued")
            .iter()
            .filter(|line| line.contains(&source))
            .count() as u64
    }

    /// One whole login of user `index` of `kind`, answered with the code mailed to its address.
    fn login(&self, setup: &Setup, kind: Kind, index: u64) -> Result<(), BenchError> {
        let address = kind.address(index);
        let mailbox = Arc::clone(&setup.mailbox);
        login(
            self.pam.path(),
            setup::OUR_SERVICE,
            &kind.user(index),
            &scenarios::rhost(0),
            move |_| mailbox.take(&address, scenarios::MAIL_WAIT).flatten(),
        )
    }

    /// Times the logins of users `users` of `kind`, one after another, and checks that each
    /// issued, mailed and verified one code, to the address from the right place, and that
    /// slapd was searched once per cold login and never otherwise.
    fn timed(&self, setup: &Setup, kind: Kind, users: Range<u64>) -> Result<Run, BenchError> {
        let before = Tally::now(&setup.mailbox, &self.otpd);
        let (searches, sourced) = (self.searches(), self.sourced(kind));
        let count = users.end - users.start;
        let watched = [
            Process::Current,
            Process::Pid(u32::try_from(self.otpd.pid()).unwrap_or_default()),
        ];
        let run = loops::run_loops(1, 0, Until::Count(count), &watched, &|_, iteration| {
            self.login(setup, kind, users.start + iteration)
        })?;
        before.check(&setup.mailbox, &self.otpd, kind.name(), count)?;
        let searched = self.searches() - searches;
        let from_source = self.sourced(kind) - sourced;
        if searched != kind.searches() * count || from_source != count {
            return Err(BenchError::Check(format!(
                "{}: {count} logins, slapd searched {searched} times, {from_source} codes were \
                 mailed with {}",
                kind.name(),
                kind.source()
            )));
        }
        Ok(run)
    }
}

/// Adds table users `0..users` to `otpd`'s table with one `otpctl import`, as an admin would.
fn add_table_users(otpd: &Otpd, users: u64) -> Result<(), BenchError> {
    let mut csv = String::from("user,email,enabled\n");
    for index in 0..users {
        csv.push_str(&format!(
            "{},{},yes\n",
            Kind::Table.user(index),
            Kind::Table.address(index)
        ));
    }
    let file = otpd.dir().join("table-users.csv");
    std::fs::write(&file, csv).map_err(BenchError::io(&file))?;
    let output = std::process::Command::new(paths::target_dir().join("otpctl"))
        .arg("--socket")
        .arg(&otpd.socket)
        .arg("--config")
        .arg(&otpd.config_path)
        .arg("import")
        .arg(&file)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(BenchError::io("otpctl"))?;
    if !output.status.success() {
        return Err(BenchError::Setup(format!(
            "otpctl import: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(())
}

/// `logins` timed logins of each kind, with users of their own for a warm-up first, in blocks
/// taking turns (cold, then the same users cached, then the table's), each checked. Returns
/// the latencies and what was checked.
pub fn run(setup: &Setup, logins: u64) -> Result<(LdapResults, String), BenchError> {
    let directory = Directory::start(setup, logins + WARMUP)?;
    let kinds = [Kind::Cold, Kind::Cached, Kind::Table];
    // Warm-up users come after the timed ones, so the timed ones are still cold.
    for kind in kinds {
        directory.timed(setup, kind, logins..logins + WARMUP)?;
    }
    let mut runs = [Run::default(), Run::default(), Run::default()];
    let mut blocks = 0;
    for users in suite::blocks(logins) {
        for (kind, run) in kinds.iter().zip(runs.iter_mut()) {
            run.absorb(directory.timed(setup, *kind, users.clone())?);
        }
        blocks += 1;
    }
    let [cold, cached, table] = runs.map(|run| {
        let mut latencies = run.latencies;
        Summary::of(&mut latencies)
    });
    let (Some(cold), Some(cached), Some(table)) = (cold, cached, table) else {
        return Err(BenchError::Check("no LDAP login was timed".into()));
    };
    let all = 3 * (logins + WARMUP);
    let check = format!(
        "LDAP, {blocks} blocks: {all} logins, {all} codes issued, mailed and verified, each \
         exactly once; the {cold_logins} cold ones mailed to the directory's address after one \
         slapd search each, the cached ones to it with none, the table's to the table's address \
         with none",
        cold_logins = logins + WARMUP,
    );
    Ok((
        LdapResults {
            cold,
            cached,
            table,
        },
        check,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_cold_login_searches_and_each_kind_has_its_own_address() {
        assert_eq!(
            [Kind::Cold, Kind::Cached, Kind::Table].map(Kind::searches),
            [1, 0, 0]
        );
        assert_eq!(Kind::Cold.address(3), Kind::Cached.address(3));
        assert_eq!(Kind::Table.address(3), "table3@table.example.test");
        assert_eq!(Kind::Cached.source(), "address_source=ldap:bench");
    }

    /// Against a real slapd, sink and otpd (run as root, as the benchmark itself): every kind
    /// is timed for each user, and the run's own checks (one search per cold login, none
    /// otherwise, each address from its source) passed.
    #[test]
    fn a_small_run_times_every_kind_for_each_user() {
        let setup = Setup::start().unwrap();
        let before = setup.mailbox.delivered();
        let (results, check) = run(&setup, 3).unwrap();
        let counts = [results.cold, results.cached, results.table].map(|s| s.count);
        assert_eq!(counts, [3, 3, 3]);
        assert_eq!(setup.mailbox.delivered() - before, 3 * (3 + WARMUP));
        assert!(check.contains("one slapd search each"), "{check}");
    }
}
