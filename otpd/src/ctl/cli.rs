//! The command line of `otpctl`, defined once with clap's derive: the parser, `--help`, the man
//! page and the shell completions all come from these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::exit::EXIT_STATUS_HELP;

/// The default config file, read for the socket path and by `check-config` and `doctor`.
pub const DEFAULT_CONFIG: &str = "/etc/otpd/otpd.toml";

/// Manage emailed login codes through otpd.
///
/// Admins (root and members of `[daemon] admin_group`) manage users' addresses, turn codes on
/// and off, clear lockouts, read the audit log and check the setup. Every user may see their
/// own state and turn the code on or off for themselves; a code mailed to the address on file
/// confirms each such change. Users never set their own address.
#[derive(Debug, Parser)]
#[command(name = "otpctl", version, long_about, after_help = EXIT_STATUS_HELP)]
pub struct Cli {
    /// otpd's socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The config file: gives the socket path, and is what check-config and doctor check.
    #[arg(long, global = true, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Print JSON instead of tables (every command that prints something).
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for otpd (a command that mails waits for the mail server too).
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 40)]
    pub timeout: u64,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Admin: manage one user (add, set-email, enable, disable, unlock, reset, remove, show,
    /// list).
    #[command(subcommand)]
    User(UserCommand),
    /// Admin: the remote addresses counted for wrong codes, and their lockouts (list, unlock).
    #[command(subcommand)]
    Host(HostCommand),
    /// Admin: create or replace users from a CSV file of `user,email[,enabled[,protocols]]`.
    ///
    /// Every line is checked first. With any bad line nothing is imported (each bad line is
    /// reported with its number) unless --partial is given. Blank lines, lines starting with
    /// `#`, and a first line starting with `user,` are skipped. `enabled` is yes/no, true/false,
    /// on/off or 1/0 (default: no); protocols are listed in the remaining fields, or in one
    /// quoted field (`"ssh,sftp"`), or separated by `;` or spaces (default: all).
    Import {
        /// The CSV file (`-` for standard input).
        file: PathBuf,
        /// Import the good lines even when some are bad.
        #[arg(long)]
        partial: bool,
    },
    /// Turn the login code on for yourself (confirmed by a mailed code), or as admin for
    /// everyone (--all) or a group (--group).
    Enable {
        /// Admin: every user otpd has a record of who has an address.
        #[arg(long, conflicts_with = "group")]
        all: bool,
        /// Admin: every member of GROUP who has an address.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
    },
    /// Turn the login code off for yourself (confirmed by a mailed code), where the policy
    /// allows it (allow_user_disable).
    Disable,
    /// Choose the protocols your login code applies to, e.g. `ssh,sftp` (narrowing the list is
    /// confirmed by a mailed code).
    Protocols {
        /// Protocol names, separated by commas.
        #[arg(value_delimiter = ',', required = true, value_name = "PROTOCOLS")]
        protocols: Vec<String>,
    },
    /// Create a new set of 10 single-use recovery codes for yourself, confirmed by a mailed
    /// code; they replace your old set and let you log in when no code can be mailed.
    RecoveryCodes,
    /// Read the audit log, newest first (admins: everyone's; users: their own).
    Audit {
        /// Only rows about this user.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Only this event (issued, mailed, verified, wrong_code, locked, user_added, ...).
        #[arg(long, value_name = "EVENT")]
        event: Option<String>,
        /// Only rows since a duration ago (90s, 30m, 1h, 7d, 2w) or a UTC date
        /// (2026-11-01, 2026-11-01T12:00).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// At most this many rows.
        #[arg(long, value_name = "N", default_value_t = 50)]
        limit: u32,
    },
    /// Admins: otpd's version, uptime, config, counts, mail servers and webhook endpoints (each
    /// with its last result). Users: their own state.
    Status,
    /// Admins: otpd's counters in Prometheus's text format (audit events since otpd started,
    /// mails per server, skips per reason, mail latency, mail servers up).
    Metrics,
    /// Admin: send a test message through each configured mail server and show what each said.
    TestMail {
        /// The recipient.
        address: String,
        /// Only the server with this name.
        #[arg(long, value_name = "NAME")]
        server: Option<String>,
    },
    /// Root: let a user log in without the code while mail is down (grant, revoke, list).
    #[command(subcommand)]
    Breakglass(BreakglassCommand),
    /// Root, otpd stopped: move this host's state to another store (migrate).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Check a config file without otpd: exit 0 when valid, else FILE:LINE:COLUMN: message.
    CheckConfig {
        /// The file [default: --config].
        file: Option<PathBuf>,
    },
    /// Check this machine's setup and print each finding with its fix.
    Doctor(DoctorArgs),
    /// Write the man page and shell completions into DIR (for packaging).
    #[command(hide = true)]
    GenerateDocs {
        /// The output directory.
        dir: PathBuf,
    },
}

/// `otpctl user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user record with an address.
    Add {
        /// The login name.
        user: String,
        /// Where the user's codes go.
        #[arg(long, value_name = "ADDRESS")]
        email: String,
        /// Turn the code on at once.
        #[arg(long)]
        enable: bool,
        /// Only these protocols, separated by commas [default: all].
        #[arg(long, value_delimiter = ',', value_name = "PROTOCOLS")]
        protocols: Option<Vec<String>>,
        /// Add the user although the name is no account on this host (yet), e.g. one that will
        /// come from a directory; without it such a name is refused as a likely typo.
        #[arg(long)]
        no_account: bool,
    },
    /// Set or replace a user's address.
    SetEmail {
        /// The login name.
        user: String,
        /// The new address.
        email: String,
    },
    /// Set the protocols a user is enrolled for (`all` for every protocol).
    SetProtocols {
        /// The login name.
        user: String,
        /// Protocol names separated by commas, or `all`.
        #[arg(value_delimiter = ',', required = true, value_name = "PROTOCOLS")]
        protocols: Vec<String>,
    },
    /// Set the language of a user's login texts (en, de, fr, es, tr, ja), or `profile` for
    /// the language of the user's profile.
    SetLanguage {
        /// The login name.
        user: String,
        /// A language code, or `profile`.
        language: String,
    },
    /// Set the phone number (E.164, such as +441234567890) that webhook channels (SMS) send a
    /// user's codes to, or `none` to remove it.
    SetPhone {
        /// The login name.
        user: String,
        /// An E.164 number, or `none`.
        phone: String,
    },
    /// Turn the login code on for a user.
    Enable {
        /// The login name.
        user: String,
    },
    /// Turn the login code off for a user (deactivate the second factor).
    Disable {
        /// The login name.
        user: String,
    },
    /// Clear a user's lockout and failure count.
    Unlock {
        /// The login name.
        user: String,
    },
    /// Give a user a clean slate: forget the codes mailed to them (the hourly and daily mail
    /// caps start again), close their unused codes and clear their lockout.
    ///
    /// For a user who reached max_sends_per_hour or max_sends_per_day (after test logins, or a
    /// mail that never arrived). The lockout of the address they log in from is left alone:
    /// see `otpctl host unlock`. Audited as user_reset with what was cleared.
    Reset {
        /// The login name.
        user: String,
    },
    /// Delete a user's record.
    Remove {
        /// The login name.
        user: String,
    },
    /// Show a user's record and effective state.
    Show {
        /// The login name.
        user: String,
    },
    /// Create a new set of 10 single-use recovery codes for a user, replacing the old set.
    ///
    /// Each code answers one login prompt in place of the mailed code, and is the way in when
    /// no mail can be sent. The codes are shown this once; otpd keeps only their MACs. `user
    /// show` says how many are left.
    RecoveryCodes {
        /// The login name.
        user: String,
    },
    /// List users otpd knows.
    List {
        /// Only users with the code turned on.
        #[arg(long)]
        enabled: bool,
        /// Only users locked out now.
        #[arg(long)]
        locked: bool,
    },
}

/// `otpctl host ...`: failures are counted per remote IP address too, so that one address
/// guessing across many accounts is stopped; a host lock refuses every user from it.
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// The addresses with wrong codes counted or a lockout in force, locked ones first, with
    /// how long each lock still holds.
    List,
    /// Clear an address's lockout and failure count, so its users can log in again (audited
    /// as host_unlocked).
    Unlock {
        /// The IP address, as `host list` and the audit's rhost show it.
        address: String,
    },
}

/// `otpctl breakglass ...`: a time-boxed, audited way in when codes cannot be mailed.
#[derive(Debug, Subcommand)]
pub enum BreakglassCommand {
    /// Root only: for N minutes, USER's logins pass the code step (the password is still
    /// asked). Logged at warning level and audited at grant, on every use and at expiry.
    Grant {
        /// The login name.
        user: String,
        /// How long, from 1 to 240 minutes.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=240))]
        minutes: u32,
        /// Only logins from remote hosts in this network (e.g. 192.0.2.0/24), as reported by
        /// sshd or a trusted caller; local logins never match.
        #[arg(long, value_name = "CIDR")]
        from: Option<String>,
    },
    /// Root only: end USER's grant now.
    Revoke {
        /// The login name.
        user: String,
    },
    /// Admin: the grants that hold now.
    List,
}

/// `otpctl store ...`: where otpd keeps its state.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Root, otpd stopped: copy this host's SQLite state into the PostgreSQL database of the
    /// config's [store] section, in one transaction.
    ///
    /// Steps: write `[store] backend = "postgresql"` and its settings into the config (otpd
    /// reads it only at start), stop otpd (`systemctl stop otpd`), run this as root, then
    /// start otpd, which now uses PostgreSQL. It reads `[daemon] state_dir` (otpd.db and
    /// secret.key) and `[store]` from --config, and never changes the SQLite file: going back
    /// is setting `[store]` back to SQLite.
    ///
    /// Copied: users (addresses, phones, languages, protocols, enabled), recovery codes (as
    /// MACs), break-glass grants, the audit log, lockouts and failure counts, the mail-cap
    /// counts, codes, single-secret reuse grants, queued and sent notices, and the addresses
    /// users logged in from. Prints the rows copied per table (--json: as JSON), never a
    /// value.
    ///
    /// Refused, with nothing written: while otpd answers on its socket or holds the SQLite
    /// file; when a copied table in the database already holds a row (another host's data, or
    /// an otpd that ran on it), unless --merge; when the database was made with another server
    /// key (every host must hold the same secret.key); when this very state was copied or
    /// merged before. The copy must finish within 10 minutes.
    Migrate {
        /// The store to copy into.
        #[arg(long, value_enum, value_name = "BACKEND")]
        to: MigrateTarget,
        /// Merge into a database other hosts already use. A user both hold must have the
        /// same address, phone, language, protocols and enabled flag there (and a break-glass
        /// grant the same network and expiry), or nothing is merged and the users are named.
        /// A user with recovery codes there keeps those (this host's are not copied; the
        /// users are named). The audit, sends and notices are added; failure counts add up;
        /// a lock lasts until the later end. A host merged before (back on SQLite since)
        /// brings only what it wrote since.
        #[arg(long)]
        merge: bool,
    },
}

/// What `otpctl store migrate` can copy into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MigrateTarget {
    /// The PostgreSQL database of the config's [store] section.
    Postgresql,
}

/// `otpctl doctor`: every path it inspects can be pointed elsewhere.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The PAM service directory [env: OTPCTL_PAM_DIR] [default: /etc/pam.d]
    #[arg(long, value_name = "DIR")]
    pub pam_dir: Option<PathBuf>,
    /// The installed module [env: OTPCTL_PAM_MODULE] [default: pam_otp_email.so in the first of
    /// /lib/<arch>-linux-gnu/security, /usr/lib/<arch>-linux-gnu/security, /usr/lib64/security
    /// and /lib64/security that holds it]
    #[arg(long, value_name = "PATH")]
    pub module: Option<PathBuf>,
    /// The command that prints sshd's effective config; doctor appends `-C
    /// user=USER,host=localhost,addr=127.0.0.1` and runs it for root and for an ordinary user,
    /// e.g. `sshd -T -f /etc/ssh/sshd_config.new` [env: OTPCTL_SSHD_COMMAND] [default: sshd -T]
    #[arg(long, value_name = "COMMAND")]
    pub sshd_command: Option<String>,
    /// Also send a real test message to ADDRESS through each server (needs otpd).
    #[arg(long, value_name = "ADDRESS")]
    pub send_to: Option<String>,
    /// Also look USER up on each LDAP server as a login would (its filter, address and groups).
    #[arg(long, value_name = "USER")]
    pub ldap_user: Option<String>,
}
