//! The checks every code request starts with (the caller may act for the user, the login's
//! protocol, the policy, a break-glass grant) over the login's resolved facts, and the common
//! path of the requests that check a code: fields, facts, these checks, then the request's
//! own work in one store transaction on a blocking thread.

use std::sync::Arc;

use common::wire::{LoginContext, Response, SkipReason};

use super::asker::Asker;
use super::facts::{Facts, Next, decide_with_facts};
use super::fields::refuse_bad_fields;
use super::verdict::Hearers;
use super::wording::{Phrase, internal_error, refused_caller};
use crate::audit::{self, Event, Subject};
use crate::caller::Caller;
use crate::notify::{self, Told, UserTo};
use crate::policy::{self, CodeNeeded, Decision};
use crate::state::{Active, Shared};
use crate::store::{IssueRequest, Store, StoreError};
use common::config::{DirectoryDown, Mode, NoticeKind, PhoneNumber};
use common::text::escape_for_log;

/// The checks every code request starts with, over its resolved `facts`: the caller may act
/// for the user, the login's protocol, the policy. `Ok(Ok(_))` when a code is needed;
/// otherwise `Ok(Err(_))`, the response to give (skip, refusal, error), already audited. The
/// outer `Err` is an audit row or grant that could not be stored, which fails the request's
/// transaction. No lookup happens here.
pub(super) fn needs_code(
    active: &Active,
    store: &mut dyn Store,
    facts: &Facts,
    now: i64,
) -> Result<Result<CodeNeeded, Response>, StoreError> {
    let (asker, login) = (facts.asker, &facts.login);
    let config = &active.config;
    // The texts before a profile applies are in `[defaults]`' language.
    let language = config.defaults.language;
    let subject = |protocol| Subject {
        login,
        protocol,
        caller_uid: asker.caller.uid,
        origin: asker.origin,
        relay: asker.relay_host(),
    };
    if !facts.may_act {
        audit::record(store, now, Event::RefusedCaller, subject(None), None)?;
        return Ok(Err(refused_caller(language)));
    }
    let protocol = match policy::login_protocol(config, login) {
        Ok(protocol) => protocol,
        Err(e) => {
            return Ok(Err(Response::Error {
                message: e.to_string(),
            }));
        }
    };
    let protocol_name = protocol.map(|p| p.as_str());
    let rhost = asker.remote_address(login);
    if let Some(refusal) = refuse_last_known(config, facts, rhost, protocol) {
        return Ok(Err(refusal));
    }
    let decision = policy::decide(
        config,
        login,
        rhost,
        protocol,
        facts.user.record.as_ref(),
        policy::Destinations {
            address: facts.user.address.clone(),
            phone: facts.user.phone.is_some(),
        },
        policy::Membership {
            groups: || facts.user.groups.clone(),
            attributes: &facts.user.attributes,
        },
    );
    if matches!(decision, Decision::NoUsableAddress | Decision::Code(_)) {
        let grant = crate::breakglass::check_login(
            store,
            now,
            login,
            protocol_name,
            asker.caller.uid,
            asker.origin,
            asker.relay_host(),
            &facts.user.grant,
        )?;
        if let Some(expires_at) = grant {
            tell_breakglass_used(store, config, &decision, facts, expires_at, now)?;
            return Ok(Err(Response::Skip {
                reason: SkipReason::BreakGlass,
            }));
        }
    }
    match decision {
        Decision::Skip(reason) => {
            let detail = serde_json::to_string(&reason).unwrap_or_default();
            let detail = detail.trim_matches('"');
            audit::record(
                store,
                now,
                Event::Skipped,
                subject(protocol_name),
                Some(detail),
            )?;
            Ok(Err(Response::Skip { reason }))
        }
        Decision::NoUsableAddress => {
            audit::record(
                store,
                now,
                Event::MailFailed,
                subject(protocol_name),
                Some("no usable address for an enrolled user"),
            )?;
            Ok(Err(Response::Unavailable {
                message: Phrase::NoAddress.in_language(language),
            }))
        }
        Decision::Code(mut needed) => {
            // The directory's language for the user, where otpd's table sets none.
            let from_table = facts.user.record.as_ref().and_then(|r| r.language);
            if let (None, Some(language)) = (from_table, facts.user.language) {
                needed.settings.language = language;
            }
            Ok(Ok(*needed))
        }
    }
}

/// Tells the user (at the address the code would have gone to, when there is one) and the
/// admin that a login passed the code step under a break-glass grant: once per grant, which
/// its expiry names.
fn tell_breakglass_used(
    store: &mut dyn Store,
    config: &common::config::Config,
    decision: &Decision,
    facts: &Facts,
    expires_at: i64,
    now: i64,
) -> Result<(), StoreError> {
    let login = &facts.login;
    let detail = format!("the grant ends {}", common::timefmt::utc(expires_at));
    let key = expires_at.to_string();
    let told = Told {
        kind: NoticeKind::BreakglassUsed,
        user: &login.user,
        service: &login.service,
        rhost: facts.asker.remote_host(login),
        detail: &detail,
        event_key: Some(&key),
        by_local_caller: facts.asker.origin == crate::caller::Origin::Local,
    };
    let phone = facts.user.phone.as_ref().map(PhoneNumber::as_str);
    let address = match decision {
        Decision::Code(needed) => Some((needed, needed.addresses())),
        _ => None,
    };
    let user = address.as_ref().map(|(needed, to)| UserTo {
        settings: &needed.settings,
        addresses: to,
        phone: notify::by_phone(
            &config.webhooks,
            &needed.settings,
            needed.address.is_some(),
            phone,
        ),
    });
    notify::tell(store, &config.notifications, user, &told, now)
}

/// The answer to a login decided on a directory's last known answer (every server down, the
/// cached one past its TTL) when its profile does not allow that (`directory_down =
/// "unavailable"`, the default): unavailable, fail closed. `None` when the facts are fresh, the
/// profile allows them, or the protocol alone decides.
fn refuse_last_known(
    config: &common::config::Config,
    facts: &Facts,
    rhost: Option<std::net::IpAddr>,
    protocol: Option<common::service::Protocol>,
) -> Option<Response> {
    let why = facts.user.last_known.as_ref()?;
    let protocol = policy::enabled_protocol(config, protocol).ok()?;
    let (profile, settings) = policy::settings_for_account(
        config,
        &facts.login.user,
        rhost,
        protocol,
        || facts.user.groups.clone(),
        &facts.user.attributes,
    );
    if settings.directory_down == DirectoryDown::LastKnown {
        return None;
    }
    tracing::error!(
        "{}; profile {} has directory_down = \"unavailable\": the login of user={} is unavailable",
        escape_for_log(why),
        escape_for_log(profile),
        escape_for_log(&facts.login.user)
    );
    Some(Response::Unavailable {
        message: Phrase::LookupFailed.in_language(settings.language),
    })
}

/// What a request that checks or looks up a code does with a skipped login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnSkip {
    /// Pass the skip on: the module answers PAM_IGNORE (probe).
    Answer,
    /// A login that needs no code has nothing to verify: an error, never a success.
    Refuse,
}

/// Runs `work` for a login that needs a code, after the common checks (fields, facts, caller,
/// protocol, policy), in one store transaction on a blocking thread; otherwise answers what
/// those checks said. An `Err` from `work` (or from the checks' audit rows) takes the whole
/// transaction back and answers an internal error. `next` is the store operation `work`
/// starts with (see [`Next`]).
pub(super) async fn for_needed_code(
    shared: &Arc<Shared>,
    caller: Caller,
    login: LoginContext,
    (on_skip, next): (OnSkip, Next),
    work: impl FnOnce(&mut dyn Store, &Facts, Hearers<'_>, i64) -> Result<Response, StoreError>
    + Send
    + 'static,
) -> Response {
    if let Err(refused) = refuse_bad_fields(shared, caller, &login).await {
        return refused;
    }
    let active = shared.active();
    let settings = Arc::clone(&active);
    // The decision and its audit rows are stored together, or (a row or the commit failed)
    // neither.
    let decided = decide_with_facts(
        shared,
        &active,
        caller,
        login,
        next,
        move |store, facts, now| match needs_code(&settings, store, facts, now)? {
            Ok(needed) if is_dry_run(&needed) => match on_skip {
                OnSkip::Answer => would_ask(store, facts, &needed, now),
                OnSkip::Refuse => Ok(Response::Error {
                    message: "this login needs no code (dry run)".into(),
                }),
            },
            Ok(needed) => {
                let hearers = Hearers {
                    config: &settings.config,
                    phone: facts.user.phone.as_ref().map(PhoneNumber::as_str),
                    needed: &needed,
                };
                work(store, facts, hearers, now)
            }
            Err(Response::Skip { .. }) if on_skip == OnSkip::Refuse => Ok(Response::Error {
                message: "this login needs no code".into(),
            }),
            Err(response) => Ok(response),
        },
    )
    .await;
    match decided {
        Ok(Ok((_, response))) | Err(response) => response,
        Ok(Err(e)) => internal_error(active.config.defaults.language, &e),
    }
}

/// Whether the login's profile is a dry run (`mode = "audit"`): decided as `required`, but
/// nothing is sent and the login passes the code step.
pub(super) fn is_dry_run(needed: &CodeNeeded) -> bool {
    needed.settings.mode == Mode::Audit
}

/// A dry run's answer to a login that would have been asked for a code: `would_ask` audited
/// (naming the profile), nothing issued or mailed, and skip.
pub(super) fn would_ask(
    store: &mut dyn Store,
    facts: &Facts,
    needed: &CodeNeeded,
    now: i64,
) -> Result<Response, StoreError> {
    let subject = code_subject(&facts.login, needed, facts.asker);
    audit::record(store, now, Event::WouldAsk, subject, Some(&needed.profile))?;
    Ok(Response::Skip {
        reason: SkipReason::DryRun,
    })
}

/// The store's view of a login that needs a code.
pub(super) fn code_request<'a>(
    login: &'a LoginContext,
    needed: &CodeNeeded,
    asker: Asker,
) -> IssueRequest<'a> {
    IssueRequest {
        user: &login.user,
        protocol: needed.protocol.as_str(),
        service: &login.service,
        rhost: asker.remote_host(login),
    }
}

/// The audit subject of a login whose code is issued, mailed or checked.
pub(super) fn code_subject<'a>(
    login: &'a LoginContext,
    needed: &'a CodeNeeded,
    asker: Asker,
) -> Subject<'a> {
    Subject {
        login,
        protocol: Some(needed.protocol.as_str()),
        caller_uid: asker.caller.uid,
        origin: asker.origin,
        relay: asker.relay_host(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use crate::login::facts::look_up_facts;
    use crate::login::testing::{FakeClock, T0, breakglass_daemon, ssh_login};

    /// What begin's checks answer for `login` asked by `uid`: `None` when a code would be
    /// mailed, else the answer.
    fn checks(shared: &Shared, uid: u32, login: LoginContext) -> Option<Response> {
        let active = shared.active();
        let facts =
            look_up_facts(shared, &active, crate::test_support::caller(uid), login).unwrap();
        let now = shared.clock.now();
        let mut store = shared.store();
        needs_code(&active, &mut store, &facts, now).unwrap().err()
    }

    fn grant(shared: &Shared, user: &str, minutes: i64, cidr: Option<&str>) {
        let now = shared.clock.now();
        let grant = crate::store::BreakGlass {
            user: user.into(),
            cidr: cidr.map(str::to_string),
            granted_by: 0,
            granted_at: now,
            expires_at: now + minutes * 60,
        };
        shared.store().grant_breakglass(&grant).unwrap();
    }

    fn audit_count(shared: &Shared, event: &str) -> usize {
        let mut store = shared.store();
        let filter = crate::store::AuditFilter {
            user: None,
            event: Some(event.into()),
            since: 0,
            limit: 100,
            before: None,
        };
        store.audit_filtered(&filter).unwrap().len()
    }

    const BREAK_GLASS: Option<Response> = Some(Response::Skip {
        reason: SkipReason::BreakGlass,
    });

    #[test]
    fn a_live_grant_skips_the_code_step_with_break_glass_and_audits_each_use() {
        let clock = Arc::new(FakeClock::default());
        clock.0.store(T0, std::sync::atomic::Ordering::SeqCst);
        let (_dir, shared) = breakglass_daemon(Arc::clone(&clock));
        assert_eq!(checks(&shared, 0, ssh_login("root", "192.0.2.1")), None);
        grant(&shared, "root", 5, None);
        assert_eq!(
            checks(&shared, 0, ssh_login("root", "192.0.2.1")),
            BREAK_GLASS
        );
        assert_eq!(
            checks(&shared, 0, ssh_login("root", "198.51.100.1")),
            BREAK_GLASS
        );
        // Only the granted user.
        assert_eq!(checks(&shared, 0, ssh_login("alice", "192.0.2.1")), None);
        assert_eq!(audit_count(&shared, "breakglass_used"), 2);
    }

    #[test]
    fn a_grant_ends_at_its_expiry_and_the_expiry_is_audited_once() {
        let clock = Arc::new(FakeClock::default());
        clock.0.store(T0, std::sync::atomic::Ordering::SeqCst);
        let (_dir, shared) = breakglass_daemon(Arc::clone(&clock));
        grant(&shared, "root", 1, None);
        clock.0.store(T0 + 59, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            checks(&shared, 0, ssh_login("root", "192.0.2.1")),
            BREAK_GLASS
        );
        clock.0.store(T0 + 60, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(checks(&shared, 0, ssh_login("root", "192.0.2.1")), None);
        assert_eq!(checks(&shared, 0, ssh_login("root", "192.0.2.1")), None);
        crate::breakglass::expire_all(&mut shared.store(), T0 + 120);
        assert_eq!(audit_count(&shared, "breakglass_expired"), 1);
    }

    #[test]
    fn a_restricted_grant_needs_a_believed_rhost_inside_its_network() {
        let clock = Arc::new(FakeClock::default());
        clock.0.store(T0, std::sync::atomic::Ordering::SeqCst);
        let (_dir, shared) = breakglass_daemon(Arc::clone(&clock));
        grant(&shared, "bob", 5, Some("192.0.2.0/24"));
        assert_eq!(
            checks(&shared, 0, ssh_login("bob", "192.0.2.9")),
            BREAK_GLASS
        );
        assert_eq!(checks(&shared, 0, ssh_login("bob", "198.51.100.1")), None);
        // bob himself (uid 1001) is a local caller: his reported rhost is not believed.
        assert_eq!(checks(&shared, 1001, ssh_login("bob", "192.0.2.9")), None);
        assert_eq!(audit_count(&shared, "breakglass_used"), 1);
    }
}
