# bash completion for otpd(8)
_otpd() {
    local cur prev
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    if [ "$prev" = "--config" ]; then
        COMPREPLY=($(compgen -f -- "$cur"))
        return
    fi
    COMPREPLY=($(compgen -W "--config --check-config --help --version" -- "$cur"))
}
complete -F _otpd otpd
