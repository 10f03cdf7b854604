//! Human output: aligned tables and `key  value` blocks, times in UTC. JSON output is the wire
//! answer itself, so scripts see exactly the fields otpd sent.

use common::wire_admin::{
    AuditRow, BreakGlassView, DaemonStatus, HostView, MailTestResult, SelfStatus, UserView,
};
use serde::Serialize;

use common::timefmt::{self, duration};

/// Renders rows under headers, columns padded to the widest cell, two spaces apart. Control
/// characters in cells are escaped so hostile values cannot break the table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let clean: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cell(c)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &clean {
        for (i, c) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut text = String::new();
        for (i, c) in cells.iter().enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            if i + 1 == cells.len() {
                text.push_str(c);
            } else {
                text.push_str(&format!("{c:<width$}  "));
            }
        }
        text.trim_end().to_string()
    };
    let mut out = vec![line(headers.to_vec())];
    for row in &clean {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

/// A block of `key  value` lines.
pub fn block(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {}", cell(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Escapes control characters in a value shown on a terminal.
fn cell(value: &str) -> String {
    common::text::escape_for_terminal(value)
}

/// A server's or endpoint's last result: the later of its last success and last failure.
fn last_result(ok_at: Option<i64>, failure_at: Option<i64>, error: Option<&str>) -> String {
    match (ok_at, failure_at) {
        (Some(ok), Some(bad)) if bad > ok => {
            format!(
                "failed {}: {}",
                timefmt::utc(bad),
                error.unwrap_or_default()
            )
        }
        (None, Some(bad)) => format!(
            "failed {}: {}",
            timefmt::utc(bad),
            error.unwrap_or_default()
        ),
        (Some(ok), _) => format!("ok {}", timefmt::utc(ok)),
        (None, None) => "not used yet".to_string(),
    }
}

/// `2026-11-22 12:45:00 UTC`, or `-`.
pub fn time(secs: Option<i64>) -> String {
    secs.map_or_else(|| "-".to_string(), timefmt::utc)
}

fn yes(value: bool) -> String {
    if value { "yes" } else { "no" }.to_string()
}

fn list(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        empty.to_string()
    } else {
        items.join(",")
    }
}

fn protocols(p: Option<&Vec<String>>) -> String {
    p.map_or_else(|| "all".to_string(), |l| list(l, "none"))
}

/// Pretty JSON of any answer.
pub fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// One user as a block.
pub fn user(u: &UserView) -> String {
    let address = match &u.address {
        Some(a) => format!("{a} (from {})", u.address_source),
        None if u.address_source.starts_with("unavailable") => {
            format!(
                "none, no code can be sent: the directory is {}",
                u.address_source
            )
        }
        None => "none: no code can be sent".to_string(),
    };
    let phone = match (&u.phone, &u.phone_source) {
        (Some(p), Some(source)) => format!("{p} (from {source})"),
        (Some(p), None) => p.clone(),
        (None, _) => "none".to_string(),
    };
    let attributes: Vec<String> = u
        .directory_attributes
        .iter()
        .map(|(name, values)| format!("{name}={}", values.join("|")))
        .collect();
    let mut rows = vec![
        ("user", u.name.clone()),
        ("record", yes(u.in_table)),
        ("address", address),
        ("phone", phone),
    ];
    // What an LDAP source returned, where one did.
    if !u.directory_groups.is_empty() {
        rows.push(("directory groups", list(&u.directory_groups, "-")));
    }
    if !attributes.is_empty() {
        rows.push(("directory attributes", list(&attributes, "-")));
    }
    rows.extend([
        ("enabled", yes(u.enabled)),
        ("protocols", protocols(u.protocols.as_ref())),
        ("code needed for", list(&u.code_required_for, "nothing")),
        (
            "locked until",
            u.locked_until
                .map_or_else(|| "not locked".into(), timefmt::utc),
        ),
        (
            "recovery codes",
            u.recovery_codes_left
                .map_or_else(|| "-".into(), |n| format!("{n} left")),
        ),
        (
            "codes mailed",
            u.mailed.map_or_else(
                || "-".into(),
                |m| {
                    format!(
                        "{} in the last hour, {} in the last day",
                        m.last_hour, m.last_day
                    )
                },
            ),
        ),
    ]);
    block(&rows)
}

/// A new set of recovery codes, one a line, with what to do with them.
pub fn recovery_codes(user: &str, codes: &[common::secret::SecretString]) -> String {
    let mut out = format!(
        "New recovery codes for {}; the old ones no longer work. Each works once, at any login \
         code prompt. They are shown only now: keep them somewhere safe.\n",
        cell(user)
    );
    for code in codes {
        out.push_str("  ");
        out.push_str(code.expose());
        out.push('\n');
    }
    out.pop();
    out
}

/// Users as a table.
pub fn users(users: &[UserView]) -> String {
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.name.clone(),
                u.address.clone().unwrap_or_else(|| "-".into()),
                yes(u.enabled),
                protocols(u.protocols.as_ref()),
                list(&u.code_required_for, "-"),
                time(u.locked_until),
            ]
        })
        .collect();
    table(
        &[
            "USER",
            "ADDRESS",
            "ENABLED",
            "PROTOCOLS",
            "CODE FOR",
            "LOCKED UNTIL",
        ],
        &rows,
    )
}

/// Audit rows as a table.
pub fn audit(rows: &[AuditRow]) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                timefmt::utc(r.time),
                r.event.clone(),
                opt(&r.user),
                opt(&r.service),
                opt(&r.protocol),
                opt(&r.rhost),
                r.caller_uid.map_or("-".into(), |u| u.to_string()),
                opt(&r.detail),
            ]
        })
        .collect();
    table(
        &[
            "TIME", "EVENT", "USER", "SERVICE", "PROTOCOL", "RHOST", "UID", "DETAIL",
        ],
        &rows,
    )
}

/// The daemon's status.
pub fn daemon_status(s: &DaemonStatus) -> String {
    let head = block(&[
        ("otpd", s.version.clone()),
        (
            "up since",
            format!(
                "{} ({})",
                timefmt::utc(s.started_at),
                duration(s.now - s.started_at)
            ),
        ),
        ("config", s.config_file.clone()),
        ("config loaded", timefmt::utc(s.config_loaded_at)),
        ("store", s.store.clone()),
        ("users", s.users.to_string()),
        ("enabled", s.enabled.to_string()),
        ("locked", s.locked.to_string()),
        ("locked hosts", s.locked_hosts.to_string()),
        ("live codes", s.live_codes.to_string()),
    ]);
    let rows: Vec<Vec<String>> = s
        .mail_servers
        .iter()
        .map(|m| {
            let last = last_result(m.last_ok_at, m.last_failure_at, m.last_error.as_deref());
            let last = match m.skipped_until {
                Some(until) if until > s.now => format!(
                    "{last}; skipped until {} after {} failures in a row",
                    timefmt::utc(until),
                    m.failures_in_a_row
                ),
                _ => last,
            };
            vec![m.name.clone(), m.address.clone(), m.security.clone(), last]
        })
        .collect();
    let mut out = format!(
        "{head}\n\nmail servers:\n{}",
        table(&["NAME", "ADDRESS", "SECURITY", "LAST RESULT"], &rows)
    );
    if !s.webhook_endpoints.is_empty() {
        let rows: Vec<Vec<String>> = s
            .webhook_endpoints
            .iter()
            .map(|w| {
                let last = last_result(w.last_ok_at, w.last_failure_at, w.last_error.as_deref());
                vec![w.channel.clone(), w.endpoint.clone(), last]
            })
            .collect();
        out.push_str(&format!(
            "\n\nwebhook channels:\n{}",
            table(&["CHANNEL", "ENDPOINT", "LAST RESULT"], &rows)
        ));
    }
    if let Some(dry_run) = &s.dry_run {
        out.push_str(&format!(
            "\n\ndry run (mode = \"audit\"), last {} days: {} logins of {} users would have been asked for a code",
            dry_run.days, dry_run.logins, dry_run.users
        ));
        if !dry_run.top.is_empty() {
            let rows: Vec<Vec<String>> = dry_run
                .top
                .iter()
                .map(|(user, n)| vec![user.clone(), n.to_string()])
                .collect();
            out.push_str(":\n");
            out.push_str(&table(&["USER", "LOGINS"], &rows));
        }
    }
    if !s.breakglass.is_empty() {
        out.push_str("\n\nbreak-glass grants (logins pass the code step):\n");
        out.push_str(&breakglass(&s.breakglass));
    }
    out
}

/// Break-glass grants that hold now.
pub fn breakglass(grants: &[BreakGlassView]) -> String {
    if grants.is_empty() {
        return "No break-glass grant holds.".to_string();
    }
    let rows: Vec<Vec<String>> = grants
        .iter()
        .map(|g| {
            vec![
                g.user.clone(),
                g.from.clone().unwrap_or_else(|| "anywhere".into()),
                timefmt::utc(g.expires_at),
                timefmt::utc(g.granted_at),
                g.granted_by.to_string(),
            ]
        })
        .collect();
    table(&["USER", "FROM", "UNTIL", "GRANTED", "BY UID"], &rows)
}

/// Remote addresses with failures counted or a lock in force, and how many did not fit.
pub fn hosts(hosts: &[HostView], left_out: u64) -> String {
    if hosts.is_empty() {
        return "No remote address has wrong codes counted or a lockout.".to_string();
    }
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            let locked = match (h.locked_seconds_left, h.locked_until) {
                (Some(left), Some(until)) => {
                    format!("for {} (until {})", duration(left), timefmt::utc(until))
                }
                _ => "no".to_string(),
            };
            vec![
                h.address.clone(),
                h.failures.to_string(),
                locked,
                timefmt::utc(h.updated_at),
            ]
        })
        .collect();
    let mut out = table(&["ADDRESS", "FAILURES", "LOCKED", "LAST CHANGE"], &rows);
    if left_out > 0 {
        out.push_str(&format!(
            "\n... and {left_out} more address(es) with shorter locks or fewer failures"
        ));
    }
    out
}

/// A user's own status.
pub fn self_status(s: &SelfStatus) -> String {
    format!(
        "{}\n{}",
        user(&s.user),
        block(&[("may turn off", yes(s.may_disable))])
    )
}

/// Test-mail results, one line per server.
pub fn mail_test(results: &[MailTestResult]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.server.clone(),
                match &r.error {
                    None => "accepted".to_string(),
                    Some(e) => format!("FAILED: {e}"),
                },
            ]
        })
        .collect();
    table(&["SERVER", "RESULT"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_escape_control_characters() {
        let t = table(
            &["A", "B"],
            &[
                vec!["long-value".into(), "x".into()],
                vec!["y\nz".into(), "w".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert_eq!(lines[0], "A           B");
        assert_eq!(lines[1], "long-value  x");
        assert_eq!(lines[2], "y\\x0az      w");
    }

    #[test]
    fn host_locks_show_how_long_they_still_hold() {
        let shown = hosts(
            &[
                HostView {
                    address: "192.0.2.7".into(),
                    failures: 0,
                    locked_until: Some(1_700_000_840),
                    locked_seconds_left: Some(840),
                    updated_at: 1_700_000_000,
                },
                HostView {
                    address: "2001:db8::1".into(),
                    failures: 3,
                    locked_until: None,
                    locked_seconds_left: None,
                    updated_at: 1_700_000_000,
                },
            ],
            2,
        );
        let lines: Vec<&str> = shown.lines().collect();
        assert!(lines[0].starts_with("ADDRESS"), "{shown}");
        assert!(
            lines[1].contains("for 14m 0s (until 2023-11-14 22:27:20 UTC)"),
            "{shown}"
        );
        assert!(
            lines[2].contains("  3  ") && lines[2].contains("  no  "),
            "{shown}"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(125), "2m 5s");
        assert_eq!(duration(3 * 86_400 + 3600 + 60), "3d 1h 1m");
    }
}
