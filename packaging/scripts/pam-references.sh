# pam_references [skip-managed]: prints each PAM config file with an active line that loads
# this package's module: the bare name pam_otp_email.so (libpam looks for it in its security
# directory, where this package installs it), or a path naming the same file as
# $PAM_OTP_MODULE (the installed module; the caller sets it). A path to another build's
# pam_otp_email.so (/opt/other/pam_otp_email.so) does not count: removing this package does not
# take that file away. With PAM_OTP_MODULE unset or empty every line naming pam_otp_email.so
# counts, so a failed lookup blocks rather than lets a stack break.
# Comments, backups and lines starting with '-' (which libpam skips quietly when their module is
# missing) do not count. With "skip-managed", lines inside the block that pam-auth-update
# manages in /etc/pam.d/common-* do not count either: pam-auth-update removes those itself.
# Uses only sh, sed, grep and dirname (essential packages). Inlined into the maintainer scripts
# by packaging/build.sh.
pam_references() {
    for pam_file in /etc/pam.conf /etc/pam.d/*; do
        [ -f "$pam_file" ] || continue
        pam_drop=''
        case "$pam_file" in
            *.dpkg-old|*.dpkg-dist|*.dpkg-new|*.dpkg-bak|*.rpmsave|*.rpmnew|*.rpmorig|*~) continue ;;
            /etc/pam.d/common-*)
                if [ "${1:-}" = skip-managed ]; then
                    pam_drop='/^# here are the per-package modules/,/^# end of pam-auth-update config/d'
                fi
                ;;
        esac
        pam_named=$(sed "$pam_drop" "$pam_file" | grep -Ev '^[[:space:]]*(#|-|$)' |
            grep -oE '[^[:space:]]*pam_otp_email\.so([[:space:]]|$)' || true)
        for pam_module in $pam_named; do
            if pam_is_ours "$pam_module"; then
                echo "$pam_file"
                break
            fi
        done
    done
}

# pam_is_ours NAME: whether a module name from a PAM line loads $PAM_OTP_MODULE. A name that is
# not absolute is looked up in libpam's security directory, the installed module's directory.
pam_is_ours() {
    [ -n "${PAM_OTP_MODULE:-}" ] || return 0
    case "$1" in
        pam_otp_email.so) return 0 ;;
        /*) [ "$1" -ef "$PAM_OTP_MODULE" ] ;;
        *) [ "$(dirname "$PAM_OTP_MODULE")/$1" -ef "$PAM_OTP_MODULE" ] ;;
    esac
}
