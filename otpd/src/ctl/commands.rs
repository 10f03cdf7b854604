//! The commands that talk to otpd: build the request, show the answer, pick the exit status.

use std::path::Path;

use common::secret::SecretString;
use common::wire_admin::{AdminRequest, AdminResponse, SelfAction};

use super::cli::{BreakglassCommand, Command, HostCommand, UserCommand};
use super::connect::{CallError, Conn};
use super::{Exit, Io, import, output, paging, since};

/// Runs a daemon command.
pub fn run(conn: &Conn, command: &Command, json: bool, io: &mut Io<'_>) -> Exit {
    let request = match request_for(command, io) {
        Ok(Some(request)) => request,
        Ok(None) => return Exit::Ok,
        Err(exit) => return exit,
    };
    let answer = match request {
        AdminRequest::SelfStart { action } => return self_change(conn, action, json, io),
        AdminRequest::UserList {
            enabled_only,
            locked_only,
            ..
        } => paging::users(conn, enabled_only, locked_only),
        AdminRequest::Audit {
            user,
            event,
            since,
            limit,
            ..
        } => paging::audit(conn, user, event, since, limit),
        AdminRequest::Import { rows, partial, .. } => paging::import(conn, rows, partial),
        request => conn.admin(request),
    };
    match answer {
        Ok(response) => show(&response, json, io),
        Err(e) => call_failed(&e, io),
    }
}

/// The request a command sends; `Err` with the exit status when the command line or the input
/// file is wrong.
fn request_for(command: &Command, io: &mut Io<'_>) -> Result<Option<AdminRequest>, Exit> {
    Ok(Some(match command {
        Command::User(user) => user_request(user, io)?,
        Command::Host(HostCommand::List) => AdminRequest::HostList,
        Command::Host(HostCommand::Unlock { address }) => AdminRequest::HostUnlock {
            address: address.clone(),
        },
        Command::Import { file, partial } => {
            let text = read_file(file, io)?;
            let (rows, problems) = import::parse(&text);
            if !problems.is_empty() {
                for p in &problems {
                    io.err(&format!("{}:{}: {}", file.display(), p.line, p.message));
                }
                if !partial {
                    io.err(&format!(
                        "otpctl: nothing imported: {} bad line(s); fix them, or use --partial to import the good ones",
                        problems.len()
                    ));
                    return Err(Exit::Failed);
                }
            }
            AdminRequest::Import {
                rows,
                partial: *partial,
                dry_run: false,
            }
        }
        Command::Enable { all, group } => match (all, group) {
            (true, _) => AdminRequest::EnableAll { group: None },
            (false, Some(group)) => AdminRequest::EnableAll {
                group: Some(group.clone()),
            },
            (false, None) => AdminRequest::SelfStart {
                action: SelfAction::Enable,
            },
        },
        Command::Disable => AdminRequest::SelfStart {
            action: SelfAction::Disable,
        },
        Command::RecoveryCodes => AdminRequest::SelfStart {
            action: SelfAction::RecoveryCodes,
        },
        Command::Protocols { protocols } => AdminRequest::SelfStart {
            action: SelfAction::Protocols {
                protocols: protocols.clone(),
            },
        },
        Command::Audit {
            user,
            event,
            since: when,
            limit,
        } => {
            let since = match when {
                Some(text) => Some(since::parse(text, now()).map_err(|e| {
                    io.err(&format!("otpctl: {e}"));
                    Exit::Usage
                })?),
                None => None,
            };
            AdminRequest::Audit {
                user: user.clone(),
                event: event.clone(),
                since,
                limit: *limit,
                before: None,
            }
        }
        Command::Status => AdminRequest::Status,
        Command::Metrics => AdminRequest::Metrics,
        Command::Breakglass(BreakglassCommand::Grant {
            user,
            minutes,
            from,
        }) => AdminRequest::BreakGlassGrant {
            user: user.clone(),
            minutes: *minutes,
            from: from.clone(),
        },
        Command::Breakglass(BreakglassCommand::Revoke { user }) => {
            AdminRequest::BreakGlassRevoke { user: user.clone() }
        }
        Command::Breakglass(BreakglassCommand::List) => AdminRequest::BreakGlassList,
        Command::TestMail { address, server } => AdminRequest::TestMail {
            to: address.clone(),
            server: server.clone(),
        },
        Command::CheckConfig { .. }
        | Command::Doctor(_)
        | Command::GenerateDocs { .. }
        | Command::Store(_) => {
            return Ok(None);
        }
    }))
}

fn user_request(command: &UserCommand, io: &mut Io<'_>) -> Result<AdminRequest, Exit> {
    Ok(match command {
        UserCommand::Add {
            user,
            email,
            enable,
            protocols,
            no_account,
        } => AdminRequest::UserAdd {
            user: user.clone(),
            email: email.clone(),
            enabled: *enable,
            protocols: protocols.clone(),
            no_account: *no_account,
        },
        UserCommand::SetEmail { user, email } => AdminRequest::UserSetEmail {
            user: user.clone(),
            email: email.clone(),
        },
        UserCommand::SetLanguage { user, language } => AdminRequest::UserSetLanguage {
            user: user.clone(),
            language: (language != "profile").then(|| language.clone()),
        },
        UserCommand::SetPhone { user, phone } => AdminRequest::UserSetPhone {
            user: user.clone(),
            phone: (phone != "none").then(|| phone.clone()),
        },
        UserCommand::SetProtocols { user, protocols } => {
            let all = protocols.iter().any(|p| p == "all");
            if all && protocols.len() > 1 {
                io.err("otpctl: give either `all` or a list of protocols, not both");
                return Err(Exit::Usage);
            }
            AdminRequest::UserSetProtocols {
                user: user.clone(),
                protocols: if all { None } else { Some(protocols.clone()) },
            }
        }
        UserCommand::Enable { user } => AdminRequest::UserEnable { user: user.clone() },
        UserCommand::Disable { user } => AdminRequest::UserDisable { user: user.clone() },
        UserCommand::Unlock { user } => AdminRequest::UserUnlock { user: user.clone() },
        UserCommand::Reset { user } => AdminRequest::UserReset { user: user.clone() },
        UserCommand::Remove { user } => AdminRequest::UserRemove { user: user.clone() },
        UserCommand::Show { user } => AdminRequest::UserShow { user: user.clone() },
        UserCommand::RecoveryCodes { user } => {
            AdminRequest::UserRecoveryCodes { user: user.clone() }
        }
        UserCommand::List { enabled, locked } => AdminRequest::UserList {
            enabled_only: *enabled,
            locked_only: *locked,
            after: None,
        },
    })
}

fn read_file(path: &Path, io: &mut Io<'_>) -> Result<String, Exit> {
    let result = if path == Path::new("-") {
        let mut text = String::new();
        io.input.read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    };
    result.map_err(|e| {
        io.err(&format!("otpctl: cannot read {}: {e}", path.display()));
        Exit::Failed
    })
}

/// Self-service: ask for the change, and when otpd mailed a code, read it and confirm.
fn self_change(conn: &Conn, action: SelfAction, json: bool, io: &mut Io<'_>) -> Exit {
    let first = match conn.admin(AdminRequest::SelfStart {
        action: action.clone(),
    }) {
        Ok(response) => response,
        Err(e) => return call_failed(&e, io),
    };
    let AdminResponse::CodeSent {
        challenge,
        sent_to,
        expires_at,
    } = first
    else {
        return show(&first, json, io);
    };
    let minutes = ((expires_at - now() + 59) / 60).max(1);
    let _ = write!(
        io.err,
        "A code was sent to {sent_to} (valid {minutes} min). Enter it to {} your login code: ",
        match &action {
            SelfAction::Enable => "turn on",
            SelfAction::Disable => "turn off",
            SelfAction::Protocols { .. } => "change the protocols of",
            SelfAction::RecoveryCodes => "replace the recovery codes of",
        }
    );
    let _ = io.err.flush();
    let mut line = String::new();
    if io.input.read_line(&mut line).unwrap_or(0) == 0 {
        io.err("");
        io.err("otpctl: no code was entered; nothing was changed");
        return Exit::Failed;
    }
    let code = SecretString::new(line.trim().to_string());
    line.clear();
    match conn.admin(AdminRequest::SelfConfirm {
        action,
        challenge,
        code,
    }) {
        Ok(response) => show(&response, json, io),
        Err(e) => call_failed(&e, io),
    }
}

/// Prints an answer and returns the exit status it means.
pub fn show(response: &AdminResponse, json: bool, io: &mut Io<'_>) -> Exit {
    if json {
        io.out(&output::json(response));
    }
    match response {
        AdminResponse::Refused { reason, message } => {
            io.err(&format!("otpctl: {message}"));
            Exit::of_refusal(*reason)
        }
        _ if json => exit_of(response),
        AdminResponse::Done { message, .. } => {
            io.out(message);
            Exit::Ok
        }
        AdminResponse::User { user } => {
            io.out(&output::user(user));
            Exit::Ok
        }
        AdminResponse::Users { users, .. } => {
            io.out(&output::users(users));
            Exit::Ok
        }
        AdminResponse::Imported {
            imported,
            problems,
            applied,
        } => {
            for p in problems {
                io.err(&format!("line {}: {}", p.line, p.message));
            }
            if *applied {
                io.out(&format!("Imported {imported} user(s)."));
            } else {
                io.err(&format!(
                    "otpctl: nothing imported: {} bad line(s); fix them, or use --partial to import the good ones",
                    problems.len()
                ));
            }
            exit_of(response)
        }
        AdminResponse::EnabledAll { enabled, skipped } => {
            io.out(&format!(
                "Turned the login code on for {} user(s){}",
                enabled.len(),
                if enabled.is_empty() {
                    ".".to_string()
                } else {
                    format!(": {}", enabled.join(", "))
                }
            ));
            for s in skipped {
                io.out(&format!("  skipped {}: {}", s.user, s.reason));
            }
            Exit::Ok
        }
        AdminResponse::Audit { rows, .. } => {
            io.out(&output::audit(rows));
            Exit::Ok
        }
        AdminResponse::Status { status } => {
            io.out(&output::daemon_status(status));
            Exit::Ok
        }
        AdminResponse::SelfStatus { status } => {
            io.out(&output::self_status(status));
            Exit::Ok
        }
        AdminResponse::Metrics { text } => {
            io.out(text.trim_end_matches('\n'));
            Exit::Ok
        }
        AdminResponse::MailTest { results } => {
            io.out(&output::mail_test(results));
            exit_of(response)
        }
        AdminResponse::CodeSent { sent_to, .. } => {
            io.out(&format!("A code was sent to {sent_to}."));
            Exit::Ok
        }
        AdminResponse::BreakGlass { grants } => {
            io.out(&output::breakglass(grants));
            Exit::Ok
        }
        AdminResponse::RecoveryCodes { user, codes } => {
            io.out(&output::recovery_codes(user, codes));
            Exit::Ok
        }
        AdminResponse::Hosts { hosts, left_out } => {
            io.out(&output::hosts(hosts, *left_out));
            Exit::Ok
        }
    }
}

/// The exit status an answer means.
fn exit_of(response: &AdminResponse) -> Exit {
    match response {
        AdminResponse::Refused { reason, .. } => Exit::of_refusal(*reason),
        AdminResponse::Imported {
            problems, applied, ..
        } if !*applied || !problems.is_empty() => Exit::Failed,
        AdminResponse::MailTest { results } if results.iter().any(|r| r.error.is_some()) => {
            Exit::Failed
        }
        _ => Exit::Ok,
    }
}

fn call_failed(error: &CallError, io: &mut Io<'_>) -> Exit {
    io.err(&format!("otpctl: {error}"));
    match error {
        CallError::Unreachable(_) => Exit::Unreachable,
        CallError::Unexpected(_) => Exit::Failed,
    }
}

/// The local clock, for `--since` and the code's minutes left.
fn now() -> i64 {
    use crate::clock::Clock;
    crate::clock::SystemClock.now()
}
