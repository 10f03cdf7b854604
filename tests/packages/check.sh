#!/usr/bin/env bash
# Checks the .deb and the .rpm end to end, as a sysadmin would meet them.
#
#   tests/packages/check.sh [--no-build] [--packages DIR]
#
#   --no-build      package the binaries already in target/release (packaging/build.sh --no-build)
#   --packages DIR  check the pam-otp-email .deb and .rpm found in DIR instead of building them
#                   (by default packaging/build.sh builds them into target/packages/)
#
# Runs as root on a Debian machine where systemd is not running (CI), and changes that machine
# for a while: it installs the .deb, enables its pam-auth-update profile, logs in through PAM
# with a code mailed to a real SMTP server on loopback, upgrades, removes and purges the
# package, and checks that the PAM stack works and nothing is left. It puts everything back on
# exit, also on failure. Steps:
#   1. lintian (no errors) and rpmlint (no errors, with packaging/rpm/rpmlint.toml);
#   2. dpkg -i: files, owners, modes, user, profile registered but not enabled, the next steps
#      printed;
#   3. systemd-analyze verify, and security (fails above 2.0) on the installed unit;
#   4. otpd started as the unit's ExecStart, as the otpd user, in the directories systemd
#      would create; READY=1 over NOTIFY_SOCKET;
#   5. pam-auth-update --enable otp-email, then pamtester logins through common-auth: right
#      code (success), wrong codes (denied), wrong password (denied, nothing mailed); a
#      datagram socket at /dev/log (when there is none) catches the module's authpriv line for
#      the refusal, and later for an outage, without the code; then the admin's day
#      (tests/tests/package_journey.rs): local Postfix, Debian's sshd with the shipped drop-in
#      (root's key and code), two users behind one address, user reset, host unlock, doctor;
#   6. dpkg -i again (upgrade): the profile stays enabled and the config stays, nothing printed;
#      then a reload as the unit's ExecReload does it;
#   7. dpkg -r is refused while a hand-written pam.d line loads the module (by name or path),
#      not for a line naming another build's pam_otp_email.so;
#   8. SIGTERM: otpd drains and exits 0; a login then fails and says otpd is unreachable; otpd
#      started without systemd exactly as packaging/README.md documents it; dpkg -r stops it
#      (and the prerm's stop leaves a process that is not otpd alone); the stack works with the
#      password alone;
#   9. dpkg -P: no file, user, profile, state or unit link left; common-* as before;
#  10. the .rpm in a scratch root (rpm --root --nodeps --noscripts): paths, owners, modes,
#      %config(noreplace), scriptlet syntax.
set -euo pipefail

root_dir=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root_dir"

package=pam-otp-email
test_user=otpd-pkgtest
service=otpd-pkgtest
manual_service=otpd-pkgtest-manual
path_service=otpd-pkgtest-path
other_build_service=otpd-pkgtest-other-build
unit=/usr/lib/systemd/system/otpd.service
module=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)/security/pam_otp_email.so
max_exposure=2.0

build_args=()
packages_dir=
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build_args+=(--no-build) ;;
        --packages)
            [ $# -ge 2 ] || { echo "check.sh: --packages needs a directory" >&2; exit 2; }
            packages_dir=$2
            shift
            ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "check.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

export DEBIAN_FRONTEND=noninteractive
# Writing an answer to a pamtester that already gave up must fail the write, not kill us.
trap '' PIPE

step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() {
    printf '\nFAIL: %s\n' "$*" >&2
    exit 1
}

# --- state for cleanup --------------------------------------------------------------------
tmp=
backup=
installed_by_us=0
user_created=0
runtime_created=0
otpd_pid=
smtp_pid=
notify_pid=
syslog_pid=
syslog_created=0
manual_otpd_pid=
decoy_pid=
rpm_root=

cleanup() {
    local status=$?
    set +e
    exec 3>&- 2>/dev/null
    if [ -f /run/otpd/otpd.pid ] && [ "$(readlink "/proc/$(cat /run/otpd/otpd.pid)/exe" 2>/dev/null)" = /usr/sbin/otpd ]; then
        kill "$(cat /run/otpd/otpd.pid)" 2>/dev/null
    fi
    for pid in $otpd_pid $manual_otpd_pid $smtp_pid $notify_pid $syslog_pid $decoy_pid; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    [ "$syslog_created" = 1 ] && rm -f /dev/log
    rm -f "/etc/pam.d/$service" "/etc/pam.d/$manual_service" "/etc/pam.d/$path_service" \
        "/etc/pam.d/$other_build_service"
    if [ "$installed_by_us" = 1 ] && dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null | grep -qv '^not-installed$'; then
        echo "cleanup: purging $package" >&2
        dpkg -P "$package" >/dev/null 2>&1 || echo "cleanup: dpkg -P $package failed" >&2
    fi
    if [ -n "$backup" ] && [ -d "$backup/pam.d" ]; then
        cp -p "$backup"/pam.d/common-* /etc/pam.d/
        cp -p "$backup"/var-lib-pam/* /var/lib/pam/
    fi
    [ "$user_created" = 1 ] && userdel "$test_user" 2>/dev/null
    [ "$runtime_created" = 1 ] && rm -rf /run/otpd
    [ -n "$rpm_root" ] && rm -rf "$rpm_root"
    [ -n "$tmp" ] && rm -rf "$tmp"
    if [ "$status" -eq 0 ]; then
        printf '\nPASS: packages checked\n'
    else
        printf '\npackages check failed (exit %s); logs were printed above\n' "$status" >&2
    fi
    exit "$status"
}
trap cleanup EXIT

# --- preconditions and tools --------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || fail "run as root: this test installs packages and adds a user"
dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null | grep -qv '^not-installed$' &&
    fail "$package is already installed here; purge it first (dpkg -P $package)"
getent passwd otpd >/dev/null && fail "a user otpd exists already; the purge test would delete it"
for path in /etc/otpd /var/lib/otpd /run/otpd; do
    [ ! -e "$path" ] || fail "$path exists already; the purge test would delete it"
done
getent passwd "$test_user" >/dev/null && fail "the test user $test_user exists already"

step "tools"
declare -A tool_package=(
    [lintian]=lintian [rpmlint]=rpmlint [rpm]=rpm [rpmbuild]=rpm [pamtester]=pamtester
    [systemd-analyze]=systemd [man]=man-db [setpriv]=util-linux [pam-auth-update]=libpam-runtime
    [dpkg-architecture]=dpkg-dev [chpasswd]=passwd
)
missing=()
[ -x /usr/bin/python3 ] || missing+=(python3)
for tool in "${!tool_package[@]}"; do
    command -v "$tool" >/dev/null || missing+=("${tool_package[$tool]}")
done
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd)
# What the .deb depends on beyond the base system, so that dpkg -i finds it.
for dependency in adduser libpam-runtime libpam0g; do
    dpkg-query -W -f='${db:Status-Status}' "$dependency" 2>/dev/null | grep -qx installed ||
        missing+=("$dependency")
done
if [ ${#missing[@]} -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    echo "installing: ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
ok "$(systemd-analyze --version | head -n1), $(lintian --version), rpmlint $(rpmlint --version)"

tmp=$(mktemp -d /tmp/otp-pkgcheck.XXXXXX)
chmod 0755 "$tmp"
backup="$tmp/backup"
mkdir -p "$backup/pam.d" "$backup/var-lib-pam"
cp -p /etc/pam.d/common-* "$backup/pam.d/"
cp -p /var/lib/pam/* "$backup/var-lib-pam/"

# --- the packages -------------------------------------------------------------------------
step "packages"
if [ -n "$packages_dir" ]; then
    mapfile -t debs < <(find "$packages_dir" -maxdepth 1 -name "${package}_*.deb")
    mapfile -t rpms < <(find "$packages_dir" -maxdepth 1 -name "$package-*.rpm")
    [ ${#debs[@]} -eq 1 ] || fail "expected one ${package}_*.deb in $packages_dir, found ${#debs[@]}"
    [ ${#rpms[@]} -eq 1 ] || fail "expected one $package-*.rpm in $packages_dir, found ${#rpms[@]}"
    deb=${debs[0]}
    rpm_file=${rpms[0]}
else
    built=$(packaging/build.sh "${build_args[@]}") ||
        fail "packaging/build.sh failed"
    deb=$(printf '%s\n' "$built" | grep '\.deb$')
    rpm_file=$(printf '%s\n' "$built" | grep '\.rpm$')
fi
ok "$deb"
ok "$rpm_file"

step "lintian"
lintian_status=0
lintian --fail-on error --display-info "$deb" > "$tmp/lintian.log" 2>&1 || lintian_status=$?
grep -v 'running with root privileges' "$tmp/lintian.log" || true
[ "$lintian_status" -eq 0 ] || fail "lintian reports errors on $deb (exit $lintian_status)"
ok "no lintian errors"

step "rpmlint"
rpmlint -c packaging/rpm/rpmlint.toml "$rpm_file" || fail "rpmlint reports errors on $rpm_file"
ok "no rpmlint errors"

# --- install ------------------------------------------------------------------------------
step "dpkg -i"
installed_by_us=1
dpkg -i "$deb" > "$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "dpkg -i $deb failed"; }
sed 's/^/   | /' "$tmp/install.log"
for next in 'edit /etc/otpd/otpd.toml' 'otpctl doctor' 'for sshd' 'WITHOUT SYSTEMD'; do
    grep -qF "$next" "$tmp/install.log" || fail "the installation does not print the next step '$next'"
done
ok "the next steps are printed"
[ "$(dpkg-deb -f "$deb" Recommends)" = 'default-mta | mail-transport-agent' ] ||
    fail "the .deb does not recommend an MTA: Recommends: $(dpkg-deb -f "$deb" Recommends)"

# expect_stat PATH MODE OWNER GROUP
expect_stat() {
    [ -e "$1" ] || fail "$1 is missing"
    local got
    got=$(stat -c '%a %U %G' "$1")
    [ "$got" = "$2 $3 $4" ] || fail "$1 is '$got', expected '$2 $3 $4'"
}
expect_stat /usr/sbin/otpd 755 root root
expect_stat /usr/bin/otpctl 755 root root
expect_stat "$module" 644 root root
expect_stat /etc/otpd 755 root root
expect_stat /etc/otpd/otpd.toml 640 root otpd
expect_stat /var/lib/otpd 700 otpd otpd
expect_stat "$unit" 644 root root
expect_stat /usr/lib/sysusers.d/otpd.conf 644 root root
expect_stat /usr/lib/tmpfiles.d/otpd.conf 644 root root
expect_stat /usr/share/pam-configs/otp-email 644 root root
expect_stat /etc/fail2ban/filter.d/otpd.conf 644 root root
expect_stat /etc/fail2ban/jail.d/otpd.conf 644 root root
# fail2ban (installed by tests/install-deps) reads the shipped jail with the package's own
# filter: enabled, it must load as the jail "otpd" (the test puts it back as it was).
if command -v fail2ban-client >/dev/null; then
    printf '[otpd]\nenabled = true\nbackend = polling\nlogpath = /dev/null\n' > /etc/fail2ban/jail.d/otpd.local
    dump=$(fail2ban-client -d 2>&1 || true)
    grep -qF "['add', 'otpd', 'polling']" <<<"$dump" ||
        fail "fail2ban does not load the shipped otpd jail: $(tail -n 5 <<<"$dump")"
    rm -f /etc/fail2ban/jail.d/otpd.local
fi
for page in man1/otpctl.1 man5/otpd.toml.5 man8/otpd.8 man8/pam_otp_email.8; do
    expect_stat "/usr/share/man/$page.gz" 644 root root
done
for command in otpd otpctl; do
    expect_stat "/usr/share/bash-completion/completions/$command" 644 root root
    expect_stat "/usr/share/zsh/vendor-completions/_$command" 644 root root
    expect_stat "/usr/share/fish/vendor_completions.d/$command.fish" 644 root root
done
for f in README.md copyright changelog.Debian.gz examples/sshd_config.d/otp-email.conf \
    examples/pam.d/sshd examples/pam.d/vsftpd examples/pam.d/nginx examples/pam.d/apache2; do
    expect_stat "/usr/share/doc/$package/$f" 644 root root
done
ok "paths, owners and modes"
[ "$(getent passwd otpd | cut -d: -f6,7)" = "/var/lib/otpd:/usr/sbin/nologin" ] ||
    fail "the otpd user is not a system user with home /var/lib/otpd and no shell: $(getent passwd otpd)"
[ "$(id -u otpd)" -lt 1000 ] || fail "otpd got uid $(id -u otpd), not a system uid"
ok "system user otpd ($(id otpd))"
grep -q pam_otp_email /etc/pam.d/common-auth && fail "the profile was enabled on installation"
for f in "$backup"/pam.d/common-*; do
    cmp -s "$f" "/etc/pam.d/$(basename "$f")" || fail "installing changed /etc/pam.d/$(basename "$f")"
done
grep -qx otp-email /var/lib/pam/seen || fail "postinst did not register the otp-email profile"
ok "pam-auth-update profile registered, not enabled"
[ -L /etc/systemd/system/multi-user.target.wants/otpd.service ] ||
    fail "otpd.service was not enabled (no multi-user.target.wants link)"
ok "otpd.service enabled"
setpriv --reuid=otpd --regid=otpd --init-groups /usr/sbin/otpd --check-config --config /etc/otpd/otpd.toml ||
    fail "the packaged /etc/otpd/otpd.toml does not pass otpd --check-config as the otpd user"
ok "packaged config valid, readable by otpd"

step "systemd-analyze verify $unit"
systemd-analyze verify "$unit" || fail "systemd-analyze verify found problems in $unit"
ok "verified"

step "systemd-analyze security $unit"
security=$(systemd-analyze security --offline=yes "$unit" 2>&1) || true
printf '%s\n' "$security" | grep -v '✓' || true
exposure=$(printf '%s\n' "$security" | sed -n 's/.*Overall exposure level for otpd.service: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "no exposure level in the output of systemd-analyze security"
awk -v e="$exposure" -v max="$max_exposure" 'BEGIN { exit !(e <= max) }' ||
    fail "systemd-analyze security rates otpd.service $exposure, above $max_exposure"
ok "exposure $exposure (at most $max_exposure)"

# --- otpd as systemd would run it ---------------------------------------------------------
step "otpd, started as the unit's ExecStart"
mail_dir="$tmp/mail"
mkdir -p "$mail_dir"
/usr/bin/python3 tests/smtp/capture.py "$mail_dir" > "$tmp/smtp.out" 2> "$tmp/smtp.err" &
smtp_pid=$!
for _ in $(seq 100); do
    grep -q '^READY ' "$tmp/smtp.out" 2>/dev/null && break
    kill -0 "$smtp_pid" 2>/dev/null || { cat "$tmp/smtp.err" >&2; fail "the SMTP capture server did not start"; }
    sleep 0.1
done
smtp_port=$(sed -n 's/^READY \([0-9]*\).*/\1/p' "$tmp/smtp.out")
[ -n "$smtp_port" ] || fail "the SMTP capture server did not say READY"
ok "SMTP capture on 127.0.0.1:$smtp_port"

cat > /etc/otpd/otpd.toml <<EOF
# Written by tests/packages/check.sh.
[protocols]
enabled = ["ssh"]

[services]
$service = "ssh"

[directory]
email_template = "{user}@example.test"

[defaults]
mode = "required"
resend_cooldown_seconds = 0

[mail]
from = "otp@example.test"

[[mail.servers]]
name = "capture"
host = "127.0.0.1"
port = $smtp_port
security = "none"
EOF
cp -p /etc/otpd/otpd.toml "$tmp/test-config.toml"
/usr/sbin/otpd --check-config --config /etc/otpd/otpd.toml || fail "the test config is invalid"

# What systemd does for the unit: RuntimeDirectory= (0755, owned by User=), StateDirectory=
# (made by tmpfiles at installation), User=, UMask=, NoNewPrivileges=, no capabilities.
unit_value() { sed -n "s/^$1=//p" "$unit" | tail -n1; }
run_user=$(unit_value User)
run_umask=$(unit_value UMask)
read -ra exec_start <<< "$(unit_value ExecStart)"
[ "$run_user" = otpd ] || fail "the unit runs as '$run_user', not otpd"
install -d -m "$(unit_value RuntimeDirectoryMode)" -o otpd -g otpd /run/otpd
runtime_created=1

notify_socket="$tmp/notify.sock"
/usr/bin/python3 -u -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
print("LISTENING")
while True:
    print(s.recv(4096).decode(errors="replace"))
' "$notify_socket" > "$tmp/notify.log" &
notify_pid=$!
for _ in $(seq 50); do
    grep -q LISTENING "$tmp/notify.log" 2>/dev/null && break
    sleep 0.1
done

(
    umask "$run_umask"
    export NOTIFY_SOCKET="$notify_socket"
    exec setpriv --reuid="$run_user" --regid="$run_user" --init-groups --no-new-privs \
        --inh-caps=-all --bounding-set=-all "${exec_start[@]}"
) 2> "$tmp/otpd.log" &
otpd_pid=$!
for _ in $(seq 150); do
    grep -q '^READY=1' "$tmp/notify.log" && break
    kill -0 "$otpd_pid" 2>/dev/null || { cat "$tmp/otpd.log" >&2; otpd_pid=; fail "otpd exited at start"; }
    sleep 0.1
done
grep -q '^READY=1' "$tmp/notify.log" || { cat "$tmp/otpd.log" >&2; fail "otpd sent no READY=1 within 15 s"; }
ok "READY=1 over NOTIFY_SOCKET, pid $otpd_pid as $(ps -o user= -p "$otpd_pid" 2>/dev/null || echo "?")"
[ -S /run/otpd/otpd.sock ] || fail "no socket at /run/otpd/otpd.sock"
expect_stat /run/otpd/otpd.sock 666 otpd otpd
expect_stat /var/lib/otpd/secret.key 600 otpd otpd
[ -f /var/lib/otpd/otpd.db ] || fail "no database at /var/lib/otpd/otpd.db"
[ "$(stat -c %U /var/lib/otpd/otpd.db)" = otpd ] || fail "otpd.db is not owned by otpd"
ok "socket 0666, secret.key 0600, otpd.db, all owned by otpd"
# Plaintext SMTP to 127.0.0.1 (the packaged config's way) never leaves the machine: no warning
# about it on every start.
grep -q 'clear text' "$tmp/otpd.log" && { cat "$tmp/otpd.log" >&2; fail "otpd warns about plaintext SMTP to loopback"; }
ok "no plaintext warning for SMTP to 127.0.0.1"

# --- logins through the profile -----------------------------------------------------------
step "pam-auth-update --enable otp-email"
pam-auth-update --enable otp-email
grep -v '^[[:space:]]*#' /etc/pam.d/common-auth | grep -v '^[[:space:]]*$'
awk '/^[ \t]*#/ { next }
     /pam_permit\.so/ { permit = NR }
     /pam_otp_email\.so/ { otp = NR; line = $0 }
     END { exit !(permit && otp > permit && line ~ /\[success=ok ignore=ignore default=die\]/) }' \
    /etc/pam.d/common-auth ||
    fail "common-auth has no '[success=ok ignore=ignore default=die] pam_otp_email.so' after pam_permit (local changes to common-*?)"
ok "the module follows the password block in common-auth"

useradd --no-create-home --shell /usr/sbin/nologin "$test_user"
user_created=1
password="Pkg-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s:%s\n' "$test_user" "$password" | chpasswd
cat > "/etc/pam.d/$service" <<'EOF'
# Written by tests/packages/check.sh: the shared password stack, nothing else.
@include common-auth
account required pam_permit.so
EOF

mail_count() { find "$mail_dir" -name '*.json' | wc -l; }

# The module's syslog lines: glibc's syslog(3) sends them as datagrams to /dev/log. With no
# syslog daemon here (CI), a socket bound there catches them, one datagram a line as sent
# ("<PRI>TIMESTAMP TAG: TEXT"). A /dev/log that exists already belongs to the machine's logger
# and is left alone; the syslog checks are then skipped.
syslog_log="$tmp/syslog.log"
if [ ! -e /dev/log ] && [ ! -L /dev/log ]; then
    /usr/bin/python3 -u -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
os.chmod("/dev/log", 0o666)
print("LISTENING", flush=True)
with open(sys.argv[1], "a") as out:
    while True:
        line = s.recv(65536).decode(errors="replace").rstrip("\0\n")
        out.write(line.replace("\n", "\\n") + "\n")
        out.flush()
' "$syslog_log" > "$tmp/syslog.out" 2>&1 &
    syslog_pid=$!
    syslog_created=1
    for _ in $(seq 50); do
        grep -q LISTENING "$tmp/syslog.out" 2>/dev/null && break
        sleep 0.1
    done
    grep -q LISTENING "$tmp/syslog.out" || fail "cannot listen on /dev/log: $(cat "$tmp/syslog.out")"
    ok "catching syslog on /dev/log"
else
    echo "   note: /dev/log exists (a syslog daemon runs here): the module's syslog lines are not checked"
fi
touch "$syslog_log"

# module_lines: sets module_log to what the module logged since the last call (pam_syslog's
# tag names it). Not for $(...): the count of lines seen must survive the call.
syslog_seen=0
module_log=
module_lines() {
    local total
    total=$(wc -l < "$syslog_log")
    module_log=$(tail -n +"$((syslog_seen + 1))" "$syslog_log" | head -n "$((total - syslog_seen))" |
        grep 'pam_otp_email(' || true)
    syslog_seen=$total
}

# expect_module_line PRIORITY TEXT [SECRET...]: the module logged exactly one line since the
# last check, at syslog priority PRIORITY (facility authpriv = 10, so 80 + severity), holding
# TEXT and none of the SECRETs. Skipped when /dev/log is the machine's.
expect_module_line() {
    local priority=$1 text=$2 lines secret
    shift 2
    [ "$syslog_created" = 1 ] || return 0
    # pamtester has exited, so the datagram was sent; give the catcher a moment to write it.
    for _ in $(seq 20); do
        [ "$(wc -l < "$syslog_log")" -gt "$syslog_seen" ] && tail -n +"$((syslog_seen + 1))" "$syslog_log" |
            grep -q 'pam_otp_email(' && break
        sleep 0.1
    done
    module_lines
    lines=$module_log
    [ -n "$lines" ] || fail "the module logged nothing to syslog (expected <$priority> ...$text...)"
    printf '%s\n' "$lines" | sed 's/^/   syslog| /'
    [ "$(printf '%s\n' "$lines" | wc -l)" -eq 1 ] || fail "the module logged more than one line"
    case "$lines" in
        "<$priority>"*) ;;
        *) fail "the module's line is not at priority <$priority> (authpriv)" ;;
    esac
    printf '%s' "$lines" | grep -qF -- "$text" || fail "the module's line does not say '$text'"
    for secret in "$@"; do
        [ -z "$secret" ] && continue
        printf '%s' "$lines" | grep -qF -- "$secret" && fail "the module's syslog line holds the code $secret"
    done
    ok "syslog: one authpriv line <$priority> saying '$text'"
}

# login PASSWORD ANSWER: runs pamtester for $service as $test_user, answers the password,
# then (ANSWER = right) the code from the next mail, (ANSWER = wrong) a wrong code at each of
# the module's 3 prompts, or nothing (ANSWER = none). Sets login_status and login_code.
login_seq=0
login() {
    local password=$1 answer=$2 before fifo pid mail code
    login_seq=$((login_seq + 1))
    login_code=
    before=$(mail_count)
    fifo="$tmp/answers.$login_seq"
    mkfifo "$fifo"
    pamtester -v "$service" "$test_user" authenticate < "$fifo" > "$tmp/pamtester.$login_seq.log" 2>&1 &
    pid=$!
    exec 3> "$fifo"
    printf '%s\n' "$password" >&3 || true
    if [ "$answer" != none ]; then
        mail="$mail_dir/$(printf '%06d' $((before + 1))).json"
        for _ in $(seq 200); do
            [ -f "$mail" ] && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if [ -f "$mail" ]; then
            code=$(/usr/bin/python3 -c '
import json, re, sys
mail = json.load(open(sys.argv[1]))
assert mail["rcpt_tos"] == [sys.argv[2]], mail["rcpt_tos"]
print(re.search(r"Your login code is: ([0-9]+)", mail["text"]).group(1))
' "$mail" "$test_user@example.test") || fail "mail $mail is not a code mail for $test_user@example.test"
            login_code=$code
            if [ "$answer" = wrong ]; then
                code=$(printf '%0*d' "${#code}" $(((10#$code + 1) % 10 ** ${#code})))
            fi
            printf '%s\n' "$code" >&3 || true
            # The next wrong code only once the module has refused the last one and asks again:
            # pamtester reads each answer with one read(2), so two at once would be one answer.
            if [ "$answer" = wrong ]; then
                for refused in 1 2; do
                    for _ in $(seq 100); do
                        [ "$(grep -c 'Wrong code' "$tmp/pamtester.$login_seq.log")" -ge "$refused" ] && break
                        kill -0 "$pid" 2>/dev/null || break
                        sleep 0.1
                    done
                    printf '%s\n' "$code" >&3 || true
                done
            fi
        fi
    fi
    exec 3>&-
    login_status=0
    wait "$pid" || login_status=$?
    sed 's/^/   | /' "$tmp/pamtester.$login_seq.log"
}

step "login with the mailed code"
login "$password" right
[ -n "$login_code" ] || fail "no code was mailed to $test_user@example.test"
[ "$login_status" -eq 0 ] || fail "the login with the right code failed (pamtester exit $login_status)"
ok "mailed code $login_code accepted"
module_lines
[ -z "$module_log" ] || fail "a successful login made the module log to syslog: $module_log"

step "login with a wrong code"
login "$password" wrong
[ -n "$login_code" ] || fail "no code was mailed for the second login"
[ "$login_status" -ne 0 ] || fail "a wrong code was accepted"
ok "wrong code refused"
wrong_code=$(printf '%0*d' "${#login_code}" $(((10#$login_code + 1) % 10 ** ${#login_code})))
expect_module_line 85 "login refused: user=$test_user service=$service rhost=-: no right code in 3 tries" \
    "$login_code" "$wrong_code"

step "login with a wrong password"
before=$(mail_count)
login "not-$password" none
[ "$login_status" -ne 0 ] || fail "a wrong password was accepted"
sleep 1
[ "$(mail_count)" -eq "$before" ] || fail "a wrong password made otpd mail a code"
ok "wrong password refused before the module, nothing mailed"

# The admin's day (tests/tests/package_journey.rs) against what dpkg installed and this otpd:
# a local Postfix, Debian's sshd with its default PermitRootLogin and the shipped drop-in (root:
# key and code), two users behind one address, otpctl user reset and host unlock through real
# logins, doctor on Debian's vsftpd and on the split stack. It puts the config back and reloads.
step "the admin's day: Postfix, sshd, root, lockouts, reset, unlock, doctor"
if [ -z "${OTP_SKIP_JOURNEY:-}" ]; then
    if ! OTP_JOURNEY_OTPD_PID=$otpd_pid OTP_JOURNEY_OTPD_LOG="$tmp/otpd.log" \
        cargo test -q -p e2e-tests --test package_journey -- --ignored --nocapture 2>&1 |
        sed 's/^/   | /'; then
        fail "the admin's day failed (tests/tests/package_journey.rs)"
    fi
    cmp -s /etc/otpd/otpd.toml "$tmp/test-config.toml" || fail "the journey did not put the config back"
    ok "root logged in with key and code; lockouts, reset, unlock and doctor as documented"
else
    ok "skipped (OTP_SKIP_JOURNEY is set)"
fi

# --- upgrade ------------------------------------------------------------------------------
step "dpkg -i again (upgrade): the second factor stays"
dpkg -i "$deb" > "$tmp/upgrade.log" 2>&1 || { cat "$tmp/upgrade.log"; fail "reinstalling $deb failed"; }
sed 's/^/   | /' "$tmp/upgrade.log"
grep -qF 'otpctl doctor' "$tmp/upgrade.log" && fail "the upgrade printed the first installation's next steps again"
grep -q 'pam_otp_email\.so' /etc/pam.d/common-auth || fail "the upgrade took the profile out of common-auth"
cmp -s /etc/otpd/otpd.toml "$tmp/test-config.toml" || fail "the upgrade replaced the changed /etc/otpd/otpd.toml"
expect_stat /etc/otpd/otpd.toml 640 root otpd
login "$password" right
if [ -z "$login_code" ] || [ "$login_status" -ne 0 ]; then
    fail "the login after the upgrade failed"
fi
ok "profile enabled, config kept (root:otpd 0640), login with code $login_code"

step "reload, as the unit's ExecReload does"
read -ra exec_reload <<< "$(unit_value ExecReload)"
exec_reload=("${exec_reload[@]/\$MAINPID/$otpd_pid}")
"${exec_reload[@]}" || fail "ExecReload (${exec_reload[*]}) failed"
for _ in $(seq 100); do
    [ "$(grep -c '^READY=1' "$tmp/notify.log")" -ge 2 ] && break
    sleep 0.1
done
grep -q '^RELOADING=1' "$tmp/notify.log" || fail "otpd sent no RELOADING=1 after ${exec_reload[*]}"
[ "$(grep -c '^READY=1' "$tmp/notify.log")" -ge 2 ] || fail "otpd sent no READY=1 after reloading"
kill -0 "$otpd_pid" 2>/dev/null || fail "otpd died on reload"
ok "RELOADING=1, then READY=1 again"

# --- removal ------------------------------------------------------------------------------
step "dpkg -r refused while a hand-written pam.d line loads the module"
printf 'auth required pam_otp_email.so\n' > "/etc/pam.d/$manual_service"
printf 'auth required %s\n' "$module" > "/etc/pam.d/$path_service"
# Another build's module, which removing this package does not take away: no reason to refuse.
printf 'auth required /opt/other/pam_otp_email.so\n' > "/etc/pam.d/$other_build_service"
if dpkg -r "$package" > "$tmp/refused.log" 2>&1; then
    cat "$tmp/refused.log"
    fail "dpkg -r removed the package although /etc/pam.d/$manual_service names the module"
fi
sed 's/^/   | /' "$tmp/refused.log"
grep -q "/etc/pam.d/$manual_service" "$tmp/refused.log" || fail "the refusal does not name /etc/pam.d/$manual_service"
grep -q "/etc/pam.d/$path_service" "$tmp/refused.log" ||
    fail "the refusal does not name /etc/pam.d/$path_service (the module by its installed path)"
grep -q "/etc/pam.d/$other_build_service" "$tmp/refused.log" &&
    fail "the refusal names /etc/pam.d/$other_build_service, which loads another build's module"
# dpkg keeps the package installed (status "installed"; only the selection says "remove").
[ "$(dpkg-query -W -f='${db:Status-Status}' "$package")" = installed ] ||
    fail "after the refused removal $package is '$(dpkg-query -W -f='${db:Status-Status}' "$package")', not installed"
[ -f "$module" ] || fail "the refused removal deleted the module"
grep -q 'pam_otp_email\.so' /etc/pam.d/common-auth || fail "the refused removal took the profile out"
rm -f "/etc/pam.d/$manual_service" "/etc/pam.d/$path_service"
ok "refused for the module by name and by path, not for another build's; nothing changed"

step "SIGTERM: otpd drains and exits"
kill -TERM "$otpd_pid"
otpd_status=0
wait "$otpd_pid" || otpd_status=$?
otpd_pid=
[ "$otpd_status" -eq 0 ] || { cat "$tmp/otpd.log" >&2; fail "otpd exited with $otpd_status on SIGTERM"; }
[ ! -e /run/otpd/otpd.sock ] || fail "otpd left its socket behind"
grep -q '^STOPPING=1' "$tmp/notify.log" || fail "otpd sent no STOPPING=1"
ok "exit 0, socket removed, STOPPING=1"

step "login while otpd is down: refused, and syslog says why"
login "$password" none
[ "$login_status" -ne 0 ] || fail "a login went through while otpd was down"
expect_module_line 83 "login not checked, refused: user=$test_user service=$service rhost=-: otpd unreachable"

step "otpd without systemd, exactly as packaging/README.md documents it"
start_command=$(sed -n '/^    # otpd without systemd/,/^$/p' packaging/README.md | sed 's/^    //')
printf '%s\n' "$start_command" | sed 's/^/   | /'
printf '%s\n' "$start_command" | grep -q 'setpriv' || fail "no start command found in packaging/README.md"
man -l /usr/share/man/man8/otpd.8.gz 2>/dev/null | grep -qF "$(printf '%s\n' "$start_command" | grep -F 'sh -c')" ||
    fail "otpd(8) does not show the same start command as packaging/README.md"
bash -c "$start_command" > "$tmp/otpd-manual.log" 2>&1 &
manual_otpd_pid=$!
for _ in $(seq 150); do
    [ -S /run/otpd/otpd.sock ] && [ -s /run/otpd/otpd.pid ] && break
    kill -0 "$manual_otpd_pid" 2>/dev/null || { cat "$tmp/otpd-manual.log" >&2; fail "otpd started by hand exited"; }
    sleep 0.1
done
[ -S /run/otpd/otpd.sock ] || { cat "$tmp/otpd-manual.log" >&2; fail "otpd started by hand made no socket"; }
hand_pid=$(cat /run/otpd/otpd.pid)
[ "$(readlink "/proc/$hand_pid/exe")" = /usr/sbin/otpd ] || fail "/run/otpd/otpd.pid ($hand_pid) is not otpd"
[ "$(ps -o user= -p "$hand_pid")" = otpd ] || fail "otpd started by hand runs as $(ps -o user= -p "$hand_pid"), not otpd"
login "$password" right
if [ -z "$login_code" ] || [ "$login_status" -ne 0 ]; then
    cat "$tmp/otpd-manual.log" >&2
    fail "the login through otpd started by hand failed"
fi
ok "pid $hand_pid as otpd, socket and pidfile, login with code $login_code"

step "the prerm's stop leaves a process that is not otpd alone"
# A stale pidfile whose number now belongs to another process: that process must live on.
sleep 300 &
decoy_pid=$!
mkdir -p "$tmp/stale"
echo "$decoy_pid" > "$tmp/stale/otpd.pid"
(
    # shellcheck source=../../packaging/scripts/stop-otpd.sh
    . packaging/scripts/stop-otpd.sh
    stop_hand_started_otpd "$tmp/stale/otpd.pid"
)
kill -0 "$decoy_pid" 2>/dev/null || fail "stopping otpd by a stale pidfile killed an unrelated process"
[ ! -e "$tmp/stale/otpd.pid" ] || fail "the stale pidfile was not removed"
kill "$decoy_pid"
wait "$decoy_pid" 2>/dev/null || true
ok "pid $decoy_pid (sleep) in the pidfile: not signalled, pidfile removed"
decoy_pid=

step "dpkg -r (with another build's pam.d line, and otpd running without systemd)"
dpkg -r "$package" || fail "dpkg -r $package failed"
# The prerm waits for otpd to exit; a removal that did not stop it leaves it running, from
# a deleted file by now ("/usr/sbin/otpd (deleted)"). A zombie has no exe link.
hand_running() { readlink "/proc/$hand_pid/exe" 2>/dev/null | grep -q '^/usr/sbin/otpd'; }
for _ in $(seq 50); do
    hand_running || break
    sleep 0.1
done
hand_running && fail "dpkg -r left otpd started without systemd (pid $hand_pid) running"
manual_status=0
wait "$manual_otpd_pid" || manual_status=$?
manual_otpd_pid=
[ "$manual_status" -eq 0 ] || { cat "$tmp/otpd-manual.log" >&2; fail "otpd started by hand exited $manual_status at removal, not 0"; }
[ ! -e /run/otpd/otpd.pid ] || fail "the removal left /run/otpd/otpd.pid"
ok "the removal stopped otpd (pid $hand_pid, exit 0) and was not refused for another build's line"
rm -f "/etc/pam.d/$other_build_service"
grep -rl 'pam_otp_email' /etc/pam.d && fail "a pam.d file still names the module after removal"
[ ! -e "$module" ] || fail "$module is still there after removal"
[ ! -e /usr/sbin/otpd ] || fail "/usr/sbin/otpd is still there after removal"
[ ! -e /usr/share/pam-configs/otp-email ] || fail "the pam-auth-update profile is still there after removal"
[ -f /etc/otpd/otpd.toml ] || fail "removal (not purge) deleted the conffile"
ok "module and profile gone, no pam.d line names the module, conffile kept"
before=$(mail_count)
login "$password" none
[ "$login_status" -eq 0 ] || fail "after removal, the password alone no longer logs in through common-auth"
[ "$(mail_count)" -eq "$before" ] || fail "a login after removal mailed something"
login "not-$password" none
[ "$login_status" -ne 0 ] || fail "after removal, a wrong password logs in"
ok "the stack works without the module: right password in, wrong password out"

step "dpkg -P"
dpkg -P "$package" || fail "dpkg -P $package failed"
installed_by_us=0
dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null | grep -qv '^not-installed$' &&
    fail "$package is still known to dpkg after purge"
while read -r path; do
    case "$path" in
        ''|*/) ;;
        *) [ ! -e "/$path" ] || fail "/$path is left after purge" ;;
    esac
done < <(dpkg-deb --fsys-tarfile "$deb" | tar -t | sed 's|^\./||')
for path in /etc/otpd /var/lib/otpd /run/otpd "/usr/share/doc/$package" \
    /etc/systemd/system/otpd.service /etc/systemd/system/multi-user.target.wants/otpd.service; do
    if [ -e "$path" ] || [ -L "$path" ]; then
        fail "$path is left after purge"
    fi
done
runtime_created=0
getent passwd otpd >/dev/null && fail "the otpd user is left after purge"
getent group otpd >/dev/null && fail "the otpd group is left after purge"
grep -rq 'otp-email\|pam_otp_email' /var/lib/pam/ /etc/pam.d/ && fail "pam-auth-update state still mentions otp-email after purge"
[ -z "$(find /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked \
    -name 'otpd*' 2>/dev/null)" ] || fail "deb-systemd-helper still tracks otpd.service after purge"
for f in "$backup"/pam.d/common-*; do
    cmp -s "$f" "/etc/pam.d/$(basename "$f")" || fail "/etc/pam.d/$(basename "$f") differs from before the installation"
done
ok "no files, user, group, profile, state or unit links left; common-* as before"

# --- rpm ----------------------------------------------------------------------------------
step "rpm --root (scratch) -i $(basename "$rpm_file")"
rpm_root=$(mktemp -d /tmp/otp-rpmroot.XXXXXX)
mkdir -p "$rpm_root/etc"
printf 'root:x:0:0:root:/root:/bin/sh\notpd:x:990:990::/var/lib/otpd:/usr/sbin/nologin\n' > "$rpm_root/etc/passwd"
printf 'root:x:0:\notpd:x:990:\n' > "$rpm_root/etc/group"
rpm --root "$rpm_root" --initdb
rpm --root "$rpm_root" --nodeps --noscripts -i "$rpm_file" 2>&1 | grep -v 'use Alien\|know what you are doing' || true
rpm --root "$rpm_root" -q "$package" >/dev/null || fail "rpm did not install $package into $rpm_root"

# expect_rpm PATH MODE UID GID (numeric: the scratch root's otpd is 990)
expect_rpm() {
    local path="$rpm_root$1" got
    [ -e "$path" ] || fail "rpm: $1 is missing"
    got=$(stat -c '%a %u %g' "$path")
    [ "$got" = "$2 $3 $4" ] || fail "rpm: $1 is '$got', expected '$2 $3 $4'"
}
expect_rpm /usr/sbin/otpd 755 0 0
expect_rpm /usr/bin/otpctl 755 0 0
expect_rpm /usr/lib64/security/pam_otp_email.so 755 0 0
expect_rpm /etc/otpd 755 0 0
expect_rpm /etc/otpd/otpd.toml 640 0 990
expect_rpm /var/lib/otpd 700 990 990
expect_rpm "$unit" 644 0 0
expect_rpm /usr/lib/sysusers.d/otpd.conf 644 0 0
expect_rpm /usr/lib/tmpfiles.d/otpd.conf 644 0 0
for page in man1/otpctl.1 man5/otpd.toml.5 man8/otpd.8 man8/pam_otp_email.8; do
    expect_rpm "/usr/share/man/$page.gz" 644 0 0
done
for command in otpd otpctl; do
    expect_rpm "/usr/share/bash-completion/completions/$command" 644 0 0
    expect_rpm "/usr/share/zsh/site-functions/_$command" 644 0 0
done
expect_rpm "/usr/share/licenses/$package/LICENSE" 644 0 0
for f in README.md examples/sshd_config.d/otp-email.conf examples/pam.d/sshd.rpm; do
    expect_rpm "/usr/share/doc/$package/$f" 644 0 0
done
[ ! -e "$rpm_root/usr/share/pam-configs" ] || fail "rpm: the Debian pam-auth-update profile is in the .rpm"
cmp -s "$rpm_root/usr/sbin/otpd" <(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/sbin/otpd) ||
    fail "rpm: /usr/sbin/otpd differs from the .deb's"
ok "paths, owners and modes"
rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm_file" 2>/dev/null |
    grep -qx 'cn /etc/otpd/otpd.toml' || fail "rpm: /etc/otpd/otpd.toml is not %config(noreplace)"
ok "/etc/otpd/otpd.toml is %config(noreplace)"
for tag in PREIN POSTIN PREUN POSTUN; do
    rpm -qp --qf "%{$tag}\n" "$rpm_file" 2>/dev/null > "$tmp/scriptlet.$tag"
    grep -qv '^(none)$' "$tmp/scriptlet.$tag" || fail "rpm: no $tag scriptlet"
    sh -n "$tmp/scriptlet.$tag" || fail "rpm: the $tag scriptlet is not valid sh"
done
grep -q 'pam_references' "$tmp/scriptlet.PREUN" || fail "rpm: %preun does not check PAM files before erase"
grep -q 'stop_hand_started_otpd' "$tmp/scriptlet.PREUN" || fail "rpm: %preun does not stop an otpd started by hand"
grep -q 'otpctl doctor' "$tmp/scriptlet.POSTIN" || fail "rpm: %post prints no next steps"
rpm -qp --recommends "$rpm_file" 2>/dev/null | grep -qx smtpdaemon || fail "rpm: no weak dependency on an MTA (Recommends: smtpdaemon)"
ok "scriptlets present and valid sh"
