# stop_hand_started_otpd [PIDFILE [PROGRAM]]: stops an otpd started without systemd the way
# packaging/README.md and otpd(8) document (it writes /run/otpd/otpd.pid), so that removing the
# package does not leave a daemon running from deleted files. systemd's otpd is stopped through
# its unit; this is for containers and sysvinit machines.
#
# Only that daemon is signalled: the pid must be a running process whose program is PROGRAM
# (/usr/sbin/otpd, or "/usr/sbin/otpd (deleted)" when an upgrade replaced the file under it).
# A stale pidfile whose number now belongs to any other process is removed and nothing is
# killed. SIGTERM lets otpd finish its requests and remove its socket; waits up
# to 30 s, as the unit's TimeoutStopSec. Uses only sh, sed, readlink and sleep. Inlined into the
# maintainer scripts by packaging/build.sh.
stop_hand_started_otpd() {
    otpd_pidfile=${1:-/run/otpd/otpd.pid}
    otpd_program=${2:-/usr/sbin/otpd}
    [ -f "$otpd_pidfile" ] || return 0
    otpd_pid=$(sed -n '1{/^[0-9][0-9]*$/p;}' "$otpd_pidfile")
    if [ -n "$otpd_pid" ] && otpd_runs "$otpd_pid" "$otpd_program"; then
        echo "pam-otp-email: stopping otpd (pid $otpd_pid, from $otpd_pidfile)" >&2
        kill -TERM "$otpd_pid" 2>/dev/null || true
        otpd_wait=0
        # A process that exited has no exe link any more, also while a zombie.
        while otpd_runs "$otpd_pid" "$otpd_program"; do
            otpd_wait=$((otpd_wait + 1))
            if [ "$otpd_wait" -gt 30 ]; then
                echo "pam-otp-email: otpd (pid $otpd_pid) did not stop within 30 s" >&2
                return 0
            fi
            sleep 1
        done
    fi
    rm -f "$otpd_pidfile"
}

# otpd_runs PID PROGRAM: whether process PID runs PROGRAM (also when the file was replaced).
otpd_runs() {
    case "$(readlink "/proc/$1/exe" 2>/dev/null)" in
        "$2"|"$2 (deleted)") return 0 ;;
        *) return 1 ;;
    esac
}
