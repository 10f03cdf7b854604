//! Whole-file tests: defaults, where each kind of error is reported, policy matching and the
//! service map, and the shipped example file.

use std::time::Duration;

use super::*;

/// A `[mail]` section that is valid on its own; tests put it last so line numbers above it
/// are the ones written in the test.
const MAIL: &str = "[mail]\nfrom = \"otp@example.com\"\n[[mail.servers]]\nname = \"local\"\nhost = \"127.0.0.1\"\nsecurity = \"none\"\n";

const PATH: &str = "/etc/otpd/otpd.toml";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new(PATH))
}

fn with_mail(text: &str) -> Config {
    parse(&format!("{text}\n{MAIL}")).unwrap()
}

/// The error for `text` (with a valid `[mail]` appended) as (line, column, message).
fn error_in(text: &str) -> (usize, usize, String) {
    error_in_whole(&format!("{text}\n{MAIL}"))
}

/// The error for exactly `text`.
fn error_in_whole(text: &str) -> (usize, usize, String) {
    let e = parse(text).unwrap_err();
    let at = e.location().expect("a parse error has a position");
    assert_eq!(
        e.to_string(),
        format!("{PATH}:{}:{}: {}", at.line, at.column, e.message())
    );
    (at.line, at.column, e.message().to_string())
}

fn groups(names: &[&str]) -> Vec<String> {
    names.iter().map(|g| g.to_string()).collect()
}

#[test]
fn a_minimal_config_gets_every_default() {
    let c = parse(MAIL).unwrap();
    assert_eq!(c.source, PathBuf::from(PATH));
    assert_eq!(c.daemon.socket, PathBuf::from("/run/otpd/otpd.sock"));
    assert_eq!(c.daemon.state_dir, PathBuf::from("/var/lib/otpd"));
    assert!(c.daemon.trusted_callers.is_empty());
    assert_eq!(c.daemon.admin_group, None);
    assert_eq!(c.daemon.default_protocol, None);
    assert_eq!(c.daemon.max_connections, 256);
    assert_eq!(c.daemon.request_timeout, Duration::from_secs(10));
    assert_eq!(c.daemon.purge_interval, Duration::from_secs(60 * 60));
    assert_eq!(
        c.daemon.audit_retention,
        Duration::from_secs(90 * 24 * 60 * 60)
    );
    assert_eq!(
        c.enabled_protocols,
        Protocol::DEFAULT_ENABLED.into_iter().collect()
    );
    assert!(!c.enabled_protocols.contains(&Protocol::Console));
    assert_eq!(c.directory.email_template, None);
    assert_eq!(c.defaults, Settings::default());
    assert_eq!(c.defaults.mode, Mode::Optional);
    assert_eq!(c.defaults.code_length, 6);
    assert_eq!(c.defaults.valid, Duration::from_secs(10 * 60));
    assert_eq!(c.defaults.max_attempts, 3);
    assert_eq!(c.defaults.resend_cooldown, Duration::from_secs(60));
    assert_eq!(c.defaults.max_sends_per_hour, 5);
    assert_eq!(c.defaults.max_sends_per_day, 20);
    assert_eq!(c.defaults.max_user_failures, 20);
    assert_eq!(c.defaults.max_host_failures, 100);
    assert_eq!(c.defaults.lockout, Duration::from_secs(15 * 60));
    assert!(c.profiles.is_empty());
    assert!(c.policies.is_empty());
    assert_eq!(c.mail.from.as_str(), "otp@example.com");
    assert_eq!(c.mail.from_name, None);
    assert_eq!(
        c.mail.servers,
        vec![SmtpServer {
            name: "local".into(),
            host: "127.0.0.1".into(),
            port: 25,
            security: Security::None,
            auth: None,
            ca_file: None,
            hello_name: None,
            timeout: Duration::from_secs(10),
            max_connections: crate::config::DEFAULT_MAX_CONNECTIONS,
            max_messages_per_connection: crate::config::DEFAULT_MAX_MESSAGES_PER_CONNECTION,
        }]
    );
}

#[test]
fn an_empty_protocol_list_protects_nothing() {
    let c = with_mail("[protocols]\nenabled = []");
    assert!(c.enabled_protocols.is_empty());
}

// --- where errors are reported ---

#[test]
fn a_syntax_error_points_at_the_bad_token() {
    let (line, column, _) = error_in("[daemon]\nmax_connections = 12 apples");
    assert_eq!((line, column), (2, 22));
}

#[test]
fn an_unclosed_string_is_reported_on_its_line() {
    let (line, _, _) = error_in("[directory]\n\nemail_template = \"{user}@example.com\n");
    assert_eq!(line, 3);
}

#[test]
fn an_unknown_key_points_at_the_key_and_lists_the_known_ones() {
    let (line, column, message) = error_in("[defaults]\nmode = \"off\"\n  max_attemps = 3");
    assert_eq!((line, column), (3, 3));
    assert!(
        message.starts_with("unknown field `max_attemps`"),
        "{message}"
    );
    assert!(message.contains("max_attempts"), "{message}");
}

#[test]
fn an_unknown_section_is_an_unknown_key() {
    let (line, column, message) = error_in("[deamon]\nsocket = \"/run/x.sock\"");
    assert_eq!((line, column), (1, 2));
    assert!(message.starts_with("unknown field `deamon`"), "{message}");
}

#[test]
fn a_value_of_the_wrong_type_points_at_the_value() {
    let (line, column, message) = error_in("[defaults]\nvalid_minutes = \"10\"");
    assert_eq!((line, column), (2, 17));
    assert_eq!(message, "invalid type: string \"10\", expected an integer");
}

#[test]
fn an_unknown_protocol_points_at_the_typo() {
    let (line, column, message) = error_in("[protocols]\nenabled = [\"ssh\", \"shh\"]");
    assert_eq!((line, column), (2, 19));
    assert_eq!(
        message,
        "unknown protocol \"shh\"; the protocols are ssh, sftp, ftp, ftps, http, https, webdav, console"
    );
    let (line, column, _) = error_in("[services]\nsshd = \"shh\"");
    assert_eq!((line, column), (2, 8));
    let (line, column, _) =
        error_in("[[policies]]\nmatch_protocol = [\"ftp\", \"htp\"]\nprofile = \"x\"");
    assert_eq!((line, column), (2, 26));
}

#[test]
fn an_out_of_range_number_names_its_range() {
    let e = parse(&format!("[defaults]\nvalid_minutes = 90\n{MAIL}")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/otpd/otpd.toml:2:17: valid_minutes must be between 1 and 60, got 90"
    );
    let (line, column, message) = error_in("[daemon]\n\nrequest_timeout_seconds = -5");
    assert_eq!((line, column), (3, 27));
    assert_eq!(
        message,
        "request_timeout_seconds must be between 1 and 60, got -5"
    );
    let (line, column, _) =
        error_in("[[mail.servers]]\nname = \"x\"\nhost = \"h\"\nsecurity = \"tls\"\nport = 70000");
    assert_eq!((line, column), (5, 8));
}

#[test]
fn a_reserve_of_all_connections_points_at_the_reserve() {
    let (line, column, message) =
        error_in("[daemon]\nmax_connections = 16\nreserved_connections = 16");
    assert_eq!((line, column), (3, 24));
    assert_eq!(
        message,
        "reserved_connections must be between 0 and 15 (less than max_connections, 16), got 16"
    );
}

#[test]
fn a_zero_cap_is_an_error_not_unlimited() {
    let (line, column, message) = error_in("[defaults]\nmax_sends_per_hour = 0");
    assert_eq!((line, column), (2, 22));
    assert_eq!(
        message,
        "max_sends_per_hour must be between 1 and 1000, got 0 (0 does not mean unlimited)"
    );
    let (line, column, _) = error_in("[profiles.p]\nmax_user_failures = 0");
    assert_eq!((line, column), (2, 21));
}

#[test]
fn a_day_cap_below_the_hour_cap_points_at_the_day_cap() {
    let (line, column, message) =
        error_in("[defaults]\nmax_sends_per_hour = 10\nmax_sends_per_day = 8");
    assert_eq!((line, column), (3, 21));
    assert_eq!(
        message,
        "max_sends_per_day (8) must be at least max_sends_per_hour (10)"
    );
}

#[test]
fn a_profile_whose_day_cap_falls_below_the_inherited_hour_cap_is_refused() {
    let (line, column, message) =
        error_in("[defaults]\nmax_sends_per_hour = 10\n[profiles.low]\nmax_sends_per_day = 9");
    assert_eq!((line, column), (4, 21));
    assert_eq!(
        message,
        "max_sends_per_day (9) must be at least max_sends_per_hour (10)"
    );
}

#[test]
fn a_profile_whose_host_limit_falls_below_the_user_limit_points_at_the_host_limit() {
    let (line, column, message) =
        error_in("[defaults]\nmax_user_failures = 30\n[profiles.p]\nmax_host_failures = 10");
    assert_eq!((line, column), (4, 21));
    assert!(
        message.starts_with("max_host_failures (10) must be at least max_user_failures (30)"),
        "{message}"
    );
}

#[test]
fn a_policy_naming_an_unknown_profile_points_at_the_name() {
    let (line, column, message) = error_in(
        "[profiles.admins]\nmode = \"required\"\n[[policies]]\nmatch_user = \"adm-*\"\nprofile = \"admin\"",
    );
    assert_eq!((line, column), (5, 11));
    assert!(
        message.starts_with("unknown profile \"admin\""),
        "{message}"
    );
}

#[test]
fn a_policy_without_a_profile_points_at_the_policy() {
    let (line, column, message) = error_in("[[policies]]\nmatch_user = \"a\"");
    assert_eq!((line, column), (1, 1));
    assert!(message.contains("has no profile"), "{message}");
}

#[test]
fn match_user_and_match_user_regex_together_are_refused() {
    let (line, column, message) = error_in(
        "[profiles.p]\n[[policies]]\nmatch_user = \"a*\"\nmatch_user_regex = \"a.*\"\nprofile = \"p\"",
    );
    assert_eq!((line, column), (4, 20));
    assert_eq!(
        message,
        "a policy may have match_user or match_user_regex, not both"
    );
}

#[test]
fn a_bad_regex_points_at_the_pattern() {
    let (line, column, message) =
        error_in("[profiles.p]\n[[policies]]\nmatch_user_regex = \"adm-[0-9\"\nprofile = \"p\"");
    assert_eq!((line, column), (3, 20));
    assert_eq!(
        message,
        "match_user_regex is not a valid regular expression: unclosed character class"
    );
}

#[test]
fn a_bad_glob_points_at_the_pattern() {
    let (line, column, message) =
        error_in("[profiles.p]\n[[policies]]\nmatch_user = \"adm-[0-9\"\nprofile = \"p\"");
    assert_eq!((line, column), (3, 14));
    assert!(
        message.starts_with("match_user is not a valid glob: the '[' at character 5"),
        "{message}"
    );
}

#[test]
fn a_bad_group_name_points_at_it() {
    let (line, column, _) =
        error_in("[profiles.p]\n[[policies]]\nmatch_group = \"wheel staff\"\nprofile = \"p\"");
    assert_eq!((line, column), (3, 15));
}

#[test]
fn an_address_with_cr_lf_is_refused_where_it_is_written() {
    let text = "[mail]\nfrom = \"otp@example.com\\r\\nBcc: all@example.com\"\n[[mail.servers]]\nname = \"l\"\nhost = \"::1\"\nsecurity = \"none\"\n";
    let (line, column, message) = error_in_whole(text);
    assert_eq!((line, column), (2, 8));
    assert_eq!(
        message,
        "from is not a valid address: the address contains '\\r', which is not allowed in an address"
    );
    // The message itself stays on one line.
    assert!(!parse(text).unwrap_err().to_string().contains('\n'));
}

#[test]
fn a_bad_email_template_points_at_it() {
    let (line, column, message) = error_in("[directory]\nemail_template = \"{name}@example.com\"");
    assert_eq!((line, column), (2, 18));
    assert!(message.contains("must contain {user}"), "{message}");
}

#[test]
fn plaintext_smtp_to_a_remote_host_points_at_security() {
    let text = "[mail]\nfrom = \"otp@example.com\"\n[[mail.servers]]\nname = \"relay\"\nhost = \"mail.example.com\"\nsecurity = \"none\"\n";
    let (line, column, message) = error_in_whole(text);
    assert_eq!((line, column), (6, 12));
    assert!(
        message.contains("only allowed for loopback hosts"),
        "{message}"
    );
    assert!(message.contains("insecure_plaintext = true"), "{message}");
    assert!(parse(&format!("{text}insecure_plaintext = true\n")).is_ok());
}

#[test]
fn a_duplicate_server_name_points_at_the_second_use() {
    let text =
        format!("{MAIL}[[mail.servers]]\nname = \"local\"\nhost = \"::1\"\nsecurity = \"none\"\n");
    let (line, column, message) = error_in_whole(&text);
    assert_eq!((line, column), (8, 8));
    assert_eq!(
        message,
        "mail server name \"local\" is already used on line 4; names must be unique"
    );
}

#[test]
fn an_empty_server_list_is_refused() {
    let (line, column, message) =
        error_in_whole("[mail]\nfrom = \"otp@example.com\"\nservers = []\n");
    assert_eq!((line, column), (3, 11));
    assert!(message.contains("at least one"), "{message}");
    let (line, column, message) =
        error_in_whole("# codes\n[mail]\nfrom = \"otp@example.com\"\ntransport = \"smtp\"\n");
    assert_eq!((line, column), (2, 1));
    assert_eq!(
        message,
        "transport = \"smtp\" needs at least one [[mail.servers]] entry"
    );
}

#[test]
fn a_server_without_security_points_at_its_table() {
    let (line, column, message) = error_in_whole(
        "[mail]\nfrom = \"otp@example.com\"\n\n[[mail.servers]]\nname = \"l\"\nhost = \"127.0.0.1\"\n",
    );
    assert_eq!((line, column), (4, 1));
    assert!(message.contains("no security"), "{message}");
}

#[test]
fn a_file_without_mail_is_refused_at_its_start() {
    let (line, column, message) = error_in_whole("[defaults]\nmode = \"required\"\n");
    assert_eq!((line, column), (1, 1));
    assert!(
        message.starts_with("the [mail] section is required"),
        "{message}"
    );
}

#[test]
fn the_profile_name_defaults_is_reserved() {
    let (line, column, _) = error_in("[profiles.defaults]\nmode = \"off\"");
    assert_eq!((line, column), (1, 11));
}

#[test]
fn an_unreadable_file_is_reported_without_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    let e = Config::load(&path).unwrap_err();
    assert_eq!(e.location(), None);
    assert!(
        e.to_string().starts_with(&format!(
            "{}: cannot read the configuration file: ",
            path.display()
        )),
        "{e}"
    );
}

#[test]
fn load_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otpd.toml");
    std::fs::write(&path, MAIL).unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.source, path);
}

// --- policies ---

fn policy_config() -> Config {
    with_mail(
        "[defaults]
mode = \"optional\"
valid_minutes = 8

[profiles.admins]
mode = \"required\"
valid_minutes = 5

[profiles.robots]
mode = \"off\"

[profiles.ftp]
code_length = 8

[[policies]]
match_user = \"adm-*\"
profile = \"admins\"

[[policies]]
match_user_regex = \"bot[0-9]+\"
profile = \"robots\"

[[policies]]
match_group = \"wheel\"
profile = \"admins\"

[[policies]]
match_protocol = [\"ftp\", \"ftps\"]
profile = \"ftp\"

[[policies]]
match_user = \"adm-x\"
profile = \"robots\"
",
    )
}

#[test]
fn the_first_matching_policy_wins() {
    let c = policy_config();
    // adm-x also matches the last policy, but the first one comes first.
    let (name, settings) = c.settings_for("adm-x", &[], Protocol::Ssh);
    assert_eq!(name, "admins");
    assert_eq!(settings.mode, Mode::Required);
    // A glob match beats a later protocol match.
    assert_eq!(c.settings_for("adm-1", &[], Protocol::Ftp).0, "admins");
}

#[test]
fn policies_match_by_glob_regex_group_and_protocol() {
    let c = policy_config();
    assert_eq!(c.settings_for("bot17", &[], Protocol::Ssh).0, "robots");
    assert_eq!(c.settings_for("bot", &[], Protocol::Ssh).0, "defaults");
    assert_eq!(c.settings_for("xbot17", &[], Protocol::Ssh).0, "defaults");
    assert_eq!(
        c.settings_for("carol", &groups(&["staff", "wheel"]), Protocol::Ssh)
            .0,
        "admins"
    );
    assert_eq!(
        c.settings_for("carol", &groups(&["staff"]), Protocol::Ftps)
            .0,
        "ftp"
    );
    assert!(c.policies_need_groups());
}

#[test]
fn no_matching_policy_means_the_defaults() {
    let c = policy_config();
    let (name, settings) = c.settings_for("alice", &groups(&["users"]), Protocol::Ssh);
    assert_eq!(name, DEFAULTS_PROFILE);
    assert_eq!(settings, &c.defaults);
    assert_eq!(settings.valid, Duration::from_secs(8 * 60));
}

#[test]
fn profiles_inherit_unset_keys_from_defaults() {
    let c = policy_config();
    let admins = &c.profiles["admins"];
    assert_eq!(admins.valid, Duration::from_secs(5 * 60));
    assert_eq!(admins.max_attempts, 3);
    let ftp = &c.profiles["ftp"];
    assert_eq!(ftp.code_length, 8);
    // Inherited from [defaults] as written, not from the built-in value.
    assert_eq!(ftp.valid, Duration::from_secs(8 * 60));
    assert_eq!(ftp.mode, Mode::Optional);
    let (_, via_policy) = c.settings_for("someone", &[], Protocol::Ftp);
    assert_eq!(via_policy, ftp);
}

#[test]
fn a_catch_all_policy_matches_everyone() {
    let c = with_mail("[profiles.all]\nmode = \"required\"\n[[policies]]\nprofile = \"all\"");
    assert_eq!(c.settings_for("anyone", &[], Protocol::Console).0, "all");
    assert!(!c.policies_need_groups());
}

// --- services ---

#[test]
fn built_in_services_map_without_configuration() {
    let c = parse(MAIL).unwrap();
    assert_eq!(c.protocol_for_service("sshd"), Some(Protocol::Ssh));
    assert_eq!(c.protocol_for_service("vsftpd"), Some(Protocol::Ftp));
    assert_eq!(c.protocol_for_service("sudo"), Some(Protocol::Console));
    assert_eq!(c.protocol_for_service("my-ftp"), None);
}

#[test]
fn services_override_and_extend_the_built_in_map() {
    let c = with_mail("[services]\nsshd = \"sftp\"\nmy-ftp = \"ftp\"");
    assert_eq!(c.protocol_for_service("sshd"), Some(Protocol::Sftp));
    assert_eq!(c.protocol_for_service("my-ftp"), Some(Protocol::Ftp));
    assert_eq!(c.protocol_for_service("proftpd"), Some(Protocol::Ftp));
    assert_eq!(c.protocol_for_service("cups"), None);
}

#[test]
fn default_protocol_covers_unknown_services_only() {
    let c = with_mail("[daemon]\ndefault_protocol = \"http\"\n[services]\nmy-ftp = \"ftp\"");
    assert_eq!(c.protocol_for_service("cups"), Some(Protocol::Http));
    assert_eq!(c.protocol_for_service("my-ftp"), Some(Protocol::Ftp));
    assert_eq!(c.protocol_for_service("sshd"), Some(Protocol::Ssh));
    assert_eq!(c.mapped_protocol("cups"), None);
    assert_eq!(c.mapped_protocol("my-ftp"), Some(Protocol::Ftp));
    assert_eq!(c.mapped_protocol("vsftpd"), Some(Protocol::Ftp));
}

#[test]
fn a_service_name_with_spaces_is_refused() {
    let (line, column, _) = error_in("[services]\n\"my ftp\" = \"ftp\"");
    assert_eq!((line, column), (2, 1));
}

// --- the shipped example ---

fn example() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/otpd.toml");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn the_example_config_parses_and_shows_the_real_defaults() {
    let c = parse(&example()).unwrap();
    // Every key the example sets is shown with its default, so it must equal a minimal file.
    let minimal = parse(MAIL).unwrap();
    assert_eq!(c.daemon, minimal.daemon);
    assert_eq!(c.enabled_protocols, minimal.enabled_protocols);
    assert_eq!(c.defaults, minimal.defaults);
    assert_eq!(c.services, minimal.services);
    assert!(c.profiles.is_empty());
    assert!(c.policies.is_empty());
    assert!(c.exemptions.is_empty());
    assert_eq!(c.mail.servers[0].port, 25);
}

#[test]
fn the_examples_commented_out_in_the_example_config_parse_too() {
    // Lines like `#admin_group = "otpd-admin"` (no space after '#') are settings left for the
    // admin to enable; prose comments have a space. Enabling all of them must still parse.
    let enabled: String = example()
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if !rest.is_empty() && !rest.starts_with([' ', '#']) => rest,
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let c = parse(&enabled).unwrap();
    assert!(c.daemon.admin_group.is_some());
    assert!(c.daemon.default_protocol.is_some());
    assert!(c.directory.email_template.is_some());
    assert!(!c.profiles.is_empty());
    assert!(!c.policies.is_empty());
    assert!(c.policies.iter().any(|p| !p.rhost_networks().is_empty()));
    assert!(!c.exemptions.is_empty());
    assert!(c.mail.servers.len() > 1);
    assert!(
        matches!(c.store, super::StoreConfig::Postgresql(_)),
        "the [store] example is not the PostgreSQL one"
    );
    assert!(c.relay_listener.is_some());
}

#[test]
fn the_dmz_example_in_the_example_config_parses_alone() {
    // Lines with two '#' are a DMZ host's whole file: [relay] is refused beside [mail].
    let dmz: String = example()
        .lines()
        .filter_map(|line| line.strip_prefix("##"))
        .map(|line| format!("{line}\n"))
        .collect();
    let c = parse(&dmz).unwrap();
    let relay = c.relay.unwrap();
    assert_eq!(relay.upstream_host, "main.example");
    assert_eq!(relay.timeout, super::DEFAULT_RELAY_TIMEOUT);
    assert_eq!(relay.connect_timeout, super::DEFAULT_RELAY_CONNECT_TIMEOUT);
}

// --- exemptions and trusted networks (issue #16) ---

const DEPLOY_KEY: &str = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";

#[test]
fn an_exemption_lists_a_users_key_fingerprints() {
    let config = with_mail(&format!(
        "[[exemptions]]\nuser = \"deploy\"\nssh_key_fingerprints = [\"{DEPLOY_KEY}\"]\n"
    ));
    let keys = [
        "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string(),
        DEPLOY_KEY.to_string(),
    ];
    assert_eq!(
        config.exempting_fingerprint("deploy", &keys),
        Some(DEPLOY_KEY)
    );
    assert_eq!(config.exempting_fingerprint("deploy", &keys[..1]), None);
    assert_eq!(
        config.exempting_fingerprint("alice", &keys),
        None,
        "another user"
    );
    assert_eq!(config.exempting_fingerprint("deploy", &[]), None);
    assert!(with_mail("").exemptions.is_empty());
}

#[test]
fn a_bad_fingerprint_points_at_it_and_shows_the_format() {
    for (bad, says) in [
        (
            "MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48",
            "only SHA256",
        ),
        (
            "uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
            "must start with SHA256:",
        ),
        (
            "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2",
            "43 base64 characters, got 42",
        ),
        (
            "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s=",
            "got 44",
        ),
        (
            "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3t-2s",
            "must be base64",
        ),
        (
            "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2t",
            "last character",
        ),
    ] {
        let (line, column, message) = error_in(&format!(
            "[[exemptions]]\nuser = \"deploy\"\nssh_key_fingerprints = [\"{DEPLOY_KEY}\", \"{bad}\"]"
        ));
        assert_eq!((line, column), (3, 79), "{bad}: {message}");
        assert!(message.contains(says), "{bad}: {message}");
        assert!(message.contains("ssh-keygen -lf"), "{message}");
    }
}

#[test]
fn an_exemption_needs_a_user_and_at_least_one_key() {
    let (line, _, message) = error_in(&format!(
        "[[exemptions]]\nssh_key_fingerprints = [\"{DEPLOY_KEY}\"]"
    ));
    assert_eq!(line, 1);
    assert!(message.contains("has no user"), "{message}");
    let (line, column, message) =
        error_in("[[exemptions]]\nuser = \"deploy\"\nssh_key_fingerprints = []");
    assert_eq!((line, column), (3, 24));
    assert!(message.contains("would exempt nothing"), "{message}");
    let (line, _, message) = error_in("[[exemptions]]\nuser = \"deploy\"");
    assert_eq!(line, 1);
    assert!(message.contains("has no ssh_key_fingerprints"), "{message}");
    let (line, column, _) = error_in(&format!(
        "[[exemptions]]\nuser = \"de ploy\"\nssh_key_fingerprints = [\"{DEPLOY_KEY}\"]"
    ));
    assert_eq!((line, column), (2, 8));
    let (line, _, message) = error_in(&format!(
        "[[exemptions]]\nuser = \"deploy\"\nfingerprints = [\"{DEPLOY_KEY}\"]"
    ));
    assert_eq!(line, 3);
    assert!(message.contains("ssh_key_fingerprints"), "{message}");
}

#[test]
fn a_trusted_network_policy_applies_only_to_remote_hosts_inside_it() {
    let config = with_mail(
        "[profiles.mgmt]\nmode = \"off\"\n[[policies]]\nmatch_rhost = [\"10.0.0.0/8\"]\nprofile = \"mgmt\"\n",
    );
    let at = |rhost: Option<&str>| {
        config
            .settings_for_login(
                "alice",
                &[],
                Protocol::Ssh,
                rhost.map(|r| r.parse().unwrap()),
            )
            .0
            .to_string()
    };
    assert_eq!(at(Some("10.1.2.3")), "mgmt");
    assert_eq!(at(Some("192.0.2.1")), DEFAULTS_PROFILE);
    assert_eq!(at(None), DEFAULTS_PROFILE);
    assert_eq!(
        config.settings_for("alice", &[], Protocol::Ssh).0,
        DEFAULTS_PROFILE
    );
}

#[test]
fn a_bad_trusted_network_points_at_it() {
    let (line, column, message) = error_in(
        "[profiles.mgmt]\n[[policies]]\nmatch_rhost = [\"10.0.0.0/8\", \"10.0.0.1/8\"]\nprofile = \"mgmt\"",
    );
    assert_eq!((line, column), (3, 30));
    assert!(message.contains("host bits"), "{message}");
}

const SMS: &str = "[[channels.webhook]]\nname = \"sms\"\ndisplay_name = \"SMS\"\nendpoints = [\"https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json\", \"https://backup.example/send\"]\nbody = \"To={to}&From=+15005550006&Body=Your code is {code}\"\n";

#[test]
fn channels_default_to_email_and_a_profile_lists_webhooks_before_it() {
    let c = with_mail("");
    assert_eq!(c.defaults.channels, vec![Channel::Email]);
    assert!(c.webhooks.is_empty());
    let c = with_mail(&format!(
        "[profiles.phones]\nchannels = [\"sms\", \"email\"]\n{SMS}"
    ));
    assert_eq!(
        c.profiles["phones"].channels,
        vec![Channel::Webhook("sms".into()), Channel::Email]
    );
    assert_eq!(c.webhooks.len(), 1);
    assert_eq!(c.webhooks[0].endpoints.len(), 2);
}

#[test]
fn a_channel_that_is_not_defined_is_refused_where_it_is_listed() {
    let (line, column, message) = error_in("[defaults]\nchannels = [\"email\", \"sms\"]");
    assert_eq!((line, column), (2, 22), "{message}");
    assert!(
        message.contains("no [[channels.webhook]] is named \"sms\""),
        "{message}"
    );
    let (line, _, message) = error_in("[defaults]\nchannels = []");
    assert_eq!(line, 2);
    assert!(message.contains("at least one"), "{message}");
    let (_, _, message) = error_in("[defaults]\nchannels = [\"email\", \"email\"]");
    assert!(message.contains("listed twice"), "{message}");
    let (line, _, message) = error_in(&format!("{SMS}{SMS}"));
    assert_eq!(line, 7, "{message}");
    assert!(message.contains("names must be unique"), "{message}");
    let (line, _, message) = error_in(&format!("{SMS}body_format = \"json\"\n"));
    assert_eq!(line, 5, "{message}");
    assert!(message.contains("JSON"), "{message}");
}

#[test]
fn the_shipped_channel_examples_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/doc/examples/channels");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let config =
            Config::parse(&format!("{text}\n{MAIL}"), &path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.webhooks.len(), 1, "{}", path.display());
        seen += 1;
    }
    assert_eq!(seen, 2);
}

#[test]
fn metrics_write_no_textfile_unless_asked() {
    assert_eq!(parse(MAIL).unwrap().metrics, MetricsConfig::default());
    let c = with_mail(
        "[metrics]\ntextfile = \"/var/lib/prometheus/node-exporter/otpd.prom\"\ninterval_seconds = 15\n",
    );
    assert_eq!(
        c.metrics.textfile,
        Some(PathBuf::from("/var/lib/prometheus/node-exporter/otpd.prom"))
    );
    assert_eq!(c.metrics.interval, Duration::from_secs(15));
}

#[test]
fn a_metrics_textfile_node_exporter_would_not_read_is_refused() {
    let (line, _, message) = error_in("[metrics]\ntextfile = \"otpd.prom\"\n");
    assert_eq!(line, 2);
    assert!(message.contains("absolute path"), "{message}");
    let (_, _, message) = error_in("[metrics]\ntextfile = \"/var/lib/node-exporter/otpd.txt\"\n");
    assert!(message.contains("must end in .prom"), "{message}");
    let (line, _, message) = error_in("[metrics]\ninterval_seconds = 0\n");
    assert_eq!(line, 2);
    assert!(message.contains("between 1 and 3600"), "{message}");
}

#[test]
fn metrics_are_served_only_on_a_loopback_address() {
    let c = with_mail("[metrics]\nlisten = \"127.0.0.1:9839\"\n");
    assert_eq!(c.metrics.listen, "127.0.0.1:9839".parse().ok());
    let c = with_mail("[metrics]\nlisten = \"[::1]:9839\"\n");
    assert_eq!(c.metrics.listen, "[::1]:9839".parse().ok());
    let (line, _, message) = error_in("[metrics]\nlisten = \"0.0.0.0:9839\"\n");
    assert_eq!(line, 2);
    assert!(message.contains("must be a loopback address"), "{message}");
    let (_, _, message) = error_in("[metrics]\nlisten = \"localhost:9839\"\n");
    assert!(message.contains("an IP address and port"), "{message}");
}

#[test]
fn an_sms_text_that_cannot_fit_one_segment_is_refused_at_its_line() {
    let long = "Ihr Anmeldecode für den Server ist ".repeat(5);
    let (line, column, message) = error_in(&format!(
        "[[channels.webhook]]\nname = \"sms\"\nendpoints = [\"https://gw.example/send\"]\nsms_field = \"Body\"\nbody = \"To={{to}}&Body={long}{{code}}\"\n"
    ));
    assert_eq!((line, column), (5, 8), "{message}");
    assert!(message.contains("GSM-7 characters"), "{message}");
    let (line, column, message) = error_in(&format!("{SMS}sms_field = \"Text\"\n"));
    assert_eq!((line, column), (6, 13), "{message}");
    assert!(message.contains("not a field of the body"), "{message}");
    // The code is never allowed in a URL, where the body could carry it.
    let (line, _, message) = error_in(
        "[[channels.webhook]]\nname = \"sms\"\nendpoints = [\"https://gw.example/send?code={code}\"]\nbody = \"B={code}\"\n",
    );
    assert_eq!(line, 3, "{message}");
    assert!(message.contains("{code} must not be"), "{message}");
}
