//! LDAP sources: each server of each `[[directory.ldap]]` reachable, its certificate verified,
//! the bind accepted and the search base readable; with `--ldap-user`, that user looked up on
//! each server as a login would. Run as root (or otpd's user) so the bind password file can be
//! read, as otpd reads it.

use std::sync::Arc;

use common::config::Config;

use super::Finding;
use crate::clock::SystemClock;
use crate::directory::LdapDirectory;

/// One finding per server of every source (and one more per server for `test_user`); a source
/// whose password or CA file cannot be used is one problem.
pub fn check(config: &Config, test_user: Option<&str>) -> Vec<Finding> {
    let mut findings = Vec::new();
    for source in &config.directory.ldap {
        let ldap = match LdapDirectory::new(source, Vec::new(), Arc::new(SystemClock)) {
            Ok(ldap) => ldap,
            Err(e) => {
                findings.push(Finding::problem(
                    "ldap",
                    e,
                    "otpd will not start with this source: fix the file named (run doctor as root, who can read it)",
                ));
                continue;
            }
        };
        let bound = match &source.bind {
            Some(bind) => format!("bound as {}", bind.dn),
            None => "searched anonymously".to_string(),
        };
        for url in &source.urls {
            let server = format!("LDAP source {} server {}", source.name, url.url());
            findings.push(match ldap.check_server(url) {
                Ok(()) => Finding::ok(
                    "ldap",
                    format!(
                        "{server}: {} verified, {bound}, base {} readable",
                        ldap.source().tls.as_str(),
                        source.base
                    ),
                ),
                Err(reason) => Finding::problem(
                    "ldap",
                    format!("{server}: {reason}"),
                    "check that the server runs, its certificate (ca_file, the host name in urls), bind_dn and bind_password_file, and base",
                ),
            });
            if let Some(user) = test_user {
                findings.push(match ldap.check_user(url, user) {
                    Ok(found) => Finding::ok("ldap", format!("{server}: {found}")),
                    Err(reason) => Finding::problem(
                        "ldap",
                        format!("{server}: {reason}"),
                        "check filter, base, address_attribute and the group settings against the user's entry",
                    ),
                });
            }
        }
    }
    findings
}
