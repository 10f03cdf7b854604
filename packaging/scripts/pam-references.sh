# pam_references [skip-managed]: prints each PAM config file with an active line that names
# pam_otp_email.so. Comments, backups and lines starting with '-' (which libpam skips quietly
# when their module is missing) do not count. With "skip-managed", lines inside the block that
# pam-auth-update manages in /etc/pam.d/common-* do not count either: pam-auth-update removes
# those itself. Uses only sh, sed and grep (essential packages). Inlined into the maintainer
# scripts by packaging/build.sh.
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
        if sed "$pam_drop" "$pam_file" | grep -Ev '^[[:space:]]*(#|-|$)' | grep -q 'pam_otp_email\.so'; then
            echo "$pam_file"
        fi
    done
}
