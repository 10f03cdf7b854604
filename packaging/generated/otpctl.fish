# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_otpctl_global_optspecs
    string join \n socket= config= json timeout= h/help V/version
end

function __fish_otpctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_otpctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_otpctl_using_subcommand
    set -l cmd (__fish_otpctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c otpctl -n "__fish_otpctl_needs_command" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_needs_command" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_needs_command" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_needs_command" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c otpctl -n "__fish_otpctl_needs_command" -s V -l version -d 'Print version'
complete -c otpctl -n "__fish_otpctl_needs_command" -f -a "user" -d 'Admin: manage one user (add, set-email, enable, disable, unlock, reset, remove, show, list)'
complete -c otpctl -n "__fish_otpctl_needs_command" -f -a "host" -d 'Admin: the remote addresses counted for wrong codes, and their lockouts (list, unlock)'
complete -c otpctl -n "__fish_otpctl_needs_command" -f -a "import" -d 'Admin: create or replace users from a CSV file of `user,email[,enabled[,protocols]]`'
complete -c otpctl -n "__fish_otpctl_needs_command" -f -a "enable" -d 'Turn the login code on for yourself (confirmed by a mailed code), or as admin for everyone (--all) or a group (--group)'
complete -c otpctl -n "__fish_otpctl_needs_command" -f -a "disable" -d 'Turn the login code off for yourself (confirmed by a mailed code), where the policy allows it (allow_user_disable)'
complete -c otpctl -n "__fish_otpctl_needs_command" -f -a "protocols" -d 'Choose the protocols your login code applies to, e.g. `ssh,sftp` (narrowing the list is confirmed by a mailed code)'
complete -c otpctl -n "__fish_otpctl_needs_command" -f -a "recovery-codes" -d 'Create a new set of 10 single-use recovery codes for yourself, confirmed by a mailed code; they replace your old set and let you log in when no code can be mailed'
complete -c otpctl -n "__fish_otpctl_needs_command" -f -a "audit" -d 'Read the audit log, newest first (admins: everyone\'s; users: their own)'
complete -c otpctl -n "__fish_otpctl_needs_command" -f -a "status" -d 'Admins: otpd\'s version, uptime, config, counts, mail servers and webhook endpoints (each with its last result). Users: their own state'
complete -c otpctl -n "__fish_otpctl_needs_command" -f -a "metrics" -d 'Admins: otpd\'s counters in Prometheus\'s text format (audit events since otpd started, mails per server, skips per reason, mail latency, mail servers up)'
complete -c otpctl -n "__fish_otpctl_needs_command" -f -a "test-mail" -d 'Admin: send a test message through each configured mail server and show what each said'
complete -c otpctl -n "__fish_otpctl_needs_command" -f -a "breakglass" -d 'Root: let a user log in without the code while mail is down (grant, revoke, list)'
complete -c otpctl -n "__fish_otpctl_needs_command" -f -a "store" -d 'Root, otpd stopped: move this host\'s state to another store (migrate)'
complete -c otpctl -n "__fish_otpctl_needs_command" -f -a "check-config" -d 'Check a config file without otpd: exit 0 when valid, else FILE:LINE:COLUMN: message'
complete -c otpctl -n "__fish_otpctl_needs_command" -f -a "doctor" -d 'Check this machine\'s setup and print each finding with its fix'
complete -c otpctl -n "__fish_otpctl_needs_command" -f -a "generate-docs" -d 'Write the man page and shell completions into DIR (for packaging)'
complete -c otpctl -n "__fish_otpctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -f -a "add" -d 'Create a user record with an address'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -f -a "set-email" -d 'Set or replace a user\'s address'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -f -a "set-protocols" -d 'Set the protocols a user is enrolled for (`all` for every protocol)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -f -a "set-language" -d 'Set the language of a user\'s login texts (en, de, fr, es, tr, ja), or `profile` for the language of the user\'s profile'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -f -a "set-phone" -d 'Set the phone number (E.164, such as +441234567890) that webhook channels (SMS) send a user\'s codes to, or `none` to remove it'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -f -a "enable" -d 'Turn the login code on for a user'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -f -a "disable" -d 'Turn the login code off for a user (deactivate the second factor)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -f -a "unlock" -d 'Clear a user\'s lockout and failure count'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -f -a "reset" -d 'Give a user a clean slate: forget the codes mailed to them (the hourly and daily mail caps start again), close their unused codes and clear their lockout'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -f -a "remove" -d 'Delete a user\'s record'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -f -a "show" -d 'Show a user\'s record and effective state'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -f -a "recovery-codes" -d 'Create a new set of 10 single-use recovery codes for a user, replacing the old set'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -f -a "list" -d 'List users otpd knows'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and not __fish_seen_subcommand_from add set-email set-protocols set-language set-phone enable disable unlock reset remove show recovery-codes list help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from add" -l email -d 'Where the user\'s codes go' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from add" -l protocols -d 'Only these protocols, separated by commas [default: all]' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from add" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from add" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from add" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from add" -l enable -d 'Turn the code on at once'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from add" -l no-account -d 'Add the user although the name is no account on this host (yet), e.g. one that will come from a directory; without it such a name is refused as a likely typo'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from add" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-email" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-email" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-email" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-email" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-email" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-protocols" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-protocols" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-protocols" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-protocols" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-protocols" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-language" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-language" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-language" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-language" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-language" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-phone" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-phone" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-phone" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-phone" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from set-phone" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from enable" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from enable" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from enable" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from enable" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from enable" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from disable" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from disable" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from disable" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from disable" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from disable" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from unlock" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from unlock" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from unlock" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from unlock" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from unlock" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from reset" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from reset" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from reset" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from reset" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from reset" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from remove" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from remove" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from remove" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from remove" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from show" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from show" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from show" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from show" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from recovery-codes" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from recovery-codes" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from recovery-codes" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from recovery-codes" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from recovery-codes" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from list" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from list" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from list" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from list" -l enabled -d 'Only users with the code turned on'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from list" -l locked -d 'Only users locked out now'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from list" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "add" -d 'Create a user record with an address'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "set-email" -d 'Set or replace a user\'s address'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "set-protocols" -d 'Set the protocols a user is enrolled for (`all` for every protocol)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "set-language" -d 'Set the language of a user\'s login texts (en, de, fr, es, tr, ja), or `profile` for the language of the user\'s profile'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "set-phone" -d 'Set the phone number (E.164, such as +441234567890) that webhook channels (SMS) send a user\'s codes to, or `none` to remove it'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "enable" -d 'Turn the login code on for a user'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "disable" -d 'Turn the login code off for a user (deactivate the second factor)'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "unlock" -d 'Clear a user\'s lockout and failure count'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "reset" -d 'Give a user a clean slate: forget the codes mailed to them (the hourly and daily mail caps start again), close their unused codes and clear their lockout'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Delete a user\'s record'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a user\'s record and effective state'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "recovery-codes" -d 'Create a new set of 10 single-use recovery codes for a user, replacing the old set'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "list" -d 'List users otpd knows'
complete -c otpctl -n "__fish_otpctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and not __fish_seen_subcommand_from list unlock help" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and not __fish_seen_subcommand_from list unlock help" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and not __fish_seen_subcommand_from list unlock help" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and not __fish_seen_subcommand_from list unlock help" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and not __fish_seen_subcommand_from list unlock help" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and not __fish_seen_subcommand_from list unlock help" -f -a "list" -d 'The addresses with wrong codes counted or a lockout in force, locked ones first, with how long each lock still holds'
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and not __fish_seen_subcommand_from list unlock help" -f -a "unlock" -d 'Clear an address\'s lockout and failure count, so its users can log in again (audited as host_unlocked)'
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and not __fish_seen_subcommand_from list unlock help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and __fish_seen_subcommand_from list" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and __fish_seen_subcommand_from list" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and __fish_seen_subcommand_from list" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and __fish_seen_subcommand_from list" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and __fish_seen_subcommand_from unlock" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and __fish_seen_subcommand_from unlock" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and __fish_seen_subcommand_from unlock" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and __fish_seen_subcommand_from unlock" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and __fish_seen_subcommand_from unlock" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and __fish_seen_subcommand_from help" -f -a "list" -d 'The addresses with wrong codes counted or a lockout in force, locked ones first, with how long each lock still holds'
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and __fish_seen_subcommand_from help" -f -a "unlock" -d 'Clear an address\'s lockout and failure count, so its users can log in again (audited as host_unlocked)'
complete -c otpctl -n "__fish_otpctl_using_subcommand host; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c otpctl -n "__fish_otpctl_using_subcommand import" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand import" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand import" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand import" -l partial -d 'Import the good lines even when some are bad'
complete -c otpctl -n "__fish_otpctl_using_subcommand import" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand import" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c otpctl -n "__fish_otpctl_using_subcommand enable" -l group -d 'Admin: every member of GROUP who has an address' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand enable" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand enable" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand enable" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand enable" -l all -d 'Admin: every user otpd has a record of who has an address'
complete -c otpctl -n "__fish_otpctl_using_subcommand enable" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand enable" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand disable" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand disable" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand disable" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand disable" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand disable" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand protocols" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand protocols" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand protocols" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand protocols" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand protocols" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand recovery-codes" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand recovery-codes" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand recovery-codes" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand recovery-codes" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand recovery-codes" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand audit" -l user -d 'Only rows about this user' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand audit" -l event -d 'Only this event (issued, mailed, verified, wrong_code, locked, user_added, ...)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand audit" -l since -d 'Only rows since a duration ago (90s, 30m, 1h, 7d, 2w) or a UTC date (2026-11-01, 2026-11-01T12:00)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand audit" -l limit -d 'At most this many rows' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand audit" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand audit" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand audit" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand audit" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand audit" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand status" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand status" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand status" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand status" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand metrics" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand metrics" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand metrics" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand metrics" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand metrics" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand test-mail" -l server -d 'Only the server with this name' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand test-mail" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand test-mail" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand test-mail" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand test-mail" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand test-mail" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and not __fish_seen_subcommand_from grant revoke list help" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and not __fish_seen_subcommand_from grant revoke list help" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and not __fish_seen_subcommand_from grant revoke list help" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and not __fish_seen_subcommand_from grant revoke list help" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and not __fish_seen_subcommand_from grant revoke list help" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and not __fish_seen_subcommand_from grant revoke list help" -f -a "grant" -d 'Root only: for N minutes, USER\'s logins pass the code step (the password is still asked). Logged at warning level and audited at grant, on every use and at expiry'
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and not __fish_seen_subcommand_from grant revoke list help" -f -a "revoke" -d 'Root only: end USER\'s grant now'
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and not __fish_seen_subcommand_from grant revoke list help" -f -a "list" -d 'Admin: the grants that hold now'
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and not __fish_seen_subcommand_from grant revoke list help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from grant" -l minutes -d 'How long, from 1 to 240 minutes' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from grant" -l from -d 'Only logins from remote hosts in this network (e.g. 192.0.2.0/24), as reported by sshd or a trusted caller; local logins never match' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from grant" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from grant" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from grant" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from grant" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from grant" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from revoke" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from revoke" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from revoke" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from revoke" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from list" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from list" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from list" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from list" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from help" -f -a "grant" -d 'Root only: for N minutes, USER\'s logins pass the code step (the password is still asked). Logged at warning level and audited at grant, on every use and at expiry'
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Root only: end USER\'s grant now'
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from help" -f -a "list" -d 'Admin: the grants that hold now'
complete -c otpctl -n "__fish_otpctl_using_subcommand breakglass; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c otpctl -n "__fish_otpctl_using_subcommand store; and not __fish_seen_subcommand_from migrate help" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand store; and not __fish_seen_subcommand_from migrate help" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand store; and not __fish_seen_subcommand_from migrate help" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand store; and not __fish_seen_subcommand_from migrate help" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand store; and not __fish_seen_subcommand_from migrate help" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand store; and not __fish_seen_subcommand_from migrate help" -f -a "migrate" -d 'Root, otpd stopped: copy this host\'s SQLite state into the PostgreSQL database of the config\'s [store] section, in one transaction'
complete -c otpctl -n "__fish_otpctl_using_subcommand store; and not __fish_seen_subcommand_from migrate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c otpctl -n "__fish_otpctl_using_subcommand store; and __fish_seen_subcommand_from migrate" -l to -d 'The store to copy into' -r -f -a "postgresql\t'The PostgreSQL database of the config\'s [store] section'"
complete -c otpctl -n "__fish_otpctl_using_subcommand store; and __fish_seen_subcommand_from migrate" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand store; and __fish_seen_subcommand_from migrate" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand store; and __fish_seen_subcommand_from migrate" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand store; and __fish_seen_subcommand_from migrate" -l merge -d 'Merge into a database other hosts already use. A user both hold must have the same address, phone, language, protocols and enabled flag there (and a break-glass grant the same network and expiry), or nothing is merged and the users are named. A user with recovery codes there keeps those (this host\'s are not copied; the users are named). The audit, sends and notices are added; failure counts add up; a lock lasts until the later end. A host merged before (back on SQLite since) brings only what it wrote since'
complete -c otpctl -n "__fish_otpctl_using_subcommand store; and __fish_seen_subcommand_from migrate" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand store; and __fish_seen_subcommand_from migrate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c otpctl -n "__fish_otpctl_using_subcommand store; and __fish_seen_subcommand_from help" -f -a "migrate" -d 'Root, otpd stopped: copy this host\'s SQLite state into the PostgreSQL database of the config\'s [store] section, in one transaction'
complete -c otpctl -n "__fish_otpctl_using_subcommand store; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c otpctl -n "__fish_otpctl_using_subcommand check-config" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand check-config" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand check-config" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand check-config" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand check-config" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand doctor" -l pam-dir -d 'The PAM service directory [env: OTPCTL_PAM_DIR] [default: /etc/pam.d]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand doctor" -l module -d 'The installed module [env: OTPCTL_PAM_MODULE] [default: pam_otp_email.so in the first of /lib/<arch>-linux-gnu/security, /usr/lib/<arch>-linux-gnu/security, /usr/lib64/security and /lib64/security that holds it]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand doctor" -l sshd-command -d 'The command that prints sshd\'s effective config; doctor appends `-C user=USER,host=localhost,addr=127.0.0.1` and runs it for root and for an ordinary user, e.g. `sshd -T -f /etc/ssh/sshd_config.new` [env: OTPCTL_SSHD_COMMAND] [default: sshd -T]' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand doctor" -l send-to -d 'Also send a real test message to ADDRESS through each server (needs otpd)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand doctor" -l ldap-user -d 'Also look USER up on each LDAP server as a login would (its filter, address and groups)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand doctor" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand doctor" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand doctor" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand doctor" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand generate-docs" -l socket -d 'otpd\'s socket [default: [daemon] socket from the config file, else /run/otpd/otpd.sock]' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand generate-docs" -l config -d 'The config file: gives the socket path, and is what check-config and doctor check' -r -F
complete -c otpctl -n "__fish_otpctl_using_subcommand generate-docs" -l timeout -d 'Seconds to wait for otpd (a command that mails waits for the mail server too)' -r
complete -c otpctl -n "__fish_otpctl_using_subcommand generate-docs" -l json -d 'Print JSON instead of tables (every command that prints something)'
complete -c otpctl -n "__fish_otpctl_using_subcommand generate-docs" -s h -l help -d 'Print help'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and not __fish_seen_subcommand_from user host import enable disable protocols recovery-codes audit status metrics test-mail breakglass store check-config doctor generate-docs help" -f -a "user" -d 'Admin: manage one user (add, set-email, enable, disable, unlock, reset, remove, show, list)'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and not __fish_seen_subcommand_from user host import enable disable protocols recovery-codes audit status metrics test-mail breakglass store check-config doctor generate-docs help" -f -a "host" -d 'Admin: the remote addresses counted for wrong codes, and their lockouts (list, unlock)'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and not __fish_seen_subcommand_from user host import enable disable protocols recovery-codes audit status metrics test-mail breakglass store check-config doctor generate-docs help" -f -a "import" -d 'Admin: create or replace users from a CSV file of `user,email[,enabled[,protocols]]`'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and not __fish_seen_subcommand_from user host import enable disable protocols recovery-codes audit status metrics test-mail breakglass store check-config doctor generate-docs help" -f -a "enable" -d 'Turn the login code on for yourself (confirmed by a mailed code), or as admin for everyone (--all) or a group (--group)'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and not __fish_seen_subcommand_from user host import enable disable protocols recovery-codes audit status metrics test-mail breakglass store check-config doctor generate-docs help" -f -a "disable" -d 'Turn the login code off for yourself (confirmed by a mailed code), where the policy allows it (allow_user_disable)'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and not __fish_seen_subcommand_from user host import enable disable protocols recovery-codes audit status metrics test-mail breakglass store check-config doctor generate-docs help" -f -a "protocols" -d 'Choose the protocols your login code applies to, e.g. `ssh,sftp` (narrowing the list is confirmed by a mailed code)'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and not __fish_seen_subcommand_from user host import enable disable protocols recovery-codes audit status metrics test-mail breakglass store check-config doctor generate-docs help" -f -a "recovery-codes" -d 'Create a new set of 10 single-use recovery codes for yourself, confirmed by a mailed code; they replace your old set and let you log in when no code can be mailed'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and not __fish_seen_subcommand_from user host import enable disable protocols recovery-codes audit status metrics test-mail breakglass store check-config doctor generate-docs help" -f -a "audit" -d 'Read the audit log, newest first (admins: everyone\'s; users: their own)'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and not __fish_seen_subcommand_from user host import enable disable protocols recovery-codes audit status metrics test-mail breakglass store check-config doctor generate-docs help" -f -a "status" -d 'Admins: otpd\'s version, uptime, config, counts, mail servers and webhook endpoints (each with its last result). Users: their own state'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and not __fish_seen_subcommand_from user host import enable disable protocols recovery-codes audit status metrics test-mail breakglass store check-config doctor generate-docs help" -f -a "metrics" -d 'Admins: otpd\'s counters in Prometheus\'s text format (audit events since otpd started, mails per server, skips per reason, mail latency, mail servers up)'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and not __fish_seen_subcommand_from user host import enable disable protocols recovery-codes audit status metrics test-mail breakglass store check-config doctor generate-docs help" -f -a "test-mail" -d 'Admin: send a test message through each configured mail server and show what each said'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and not __fish_seen_subcommand_from user host import enable disable protocols recovery-codes audit status metrics test-mail breakglass store check-config doctor generate-docs help" -f -a "breakglass" -d 'Root: let a user log in without the code while mail is down (grant, revoke, list)'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and not __fish_seen_subcommand_from user host import enable disable protocols recovery-codes audit status metrics test-mail breakglass store check-config doctor generate-docs help" -f -a "store" -d 'Root, otpd stopped: move this host\'s state to another store (migrate)'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and not __fish_seen_subcommand_from user host import enable disable protocols recovery-codes audit status metrics test-mail breakglass store check-config doctor generate-docs help" -f -a "check-config" -d 'Check a config file without otpd: exit 0 when valid, else FILE:LINE:COLUMN: message'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and not __fish_seen_subcommand_from user host import enable disable protocols recovery-codes audit status metrics test-mail breakglass store check-config doctor generate-docs help" -f -a "doctor" -d 'Check this machine\'s setup and print each finding with its fix'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and not __fish_seen_subcommand_from user host import enable disable protocols recovery-codes audit status metrics test-mail breakglass store check-config doctor generate-docs help" -f -a "generate-docs" -d 'Write the man page and shell completions into DIR (for packaging)'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and not __fish_seen_subcommand_from user host import enable disable protocols recovery-codes audit status metrics test-mail breakglass store check-config doctor generate-docs help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "add" -d 'Create a user record with an address'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "set-email" -d 'Set or replace a user\'s address'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "set-protocols" -d 'Set the protocols a user is enrolled for (`all` for every protocol)'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "set-language" -d 'Set the language of a user\'s login texts (en, de, fr, es, tr, ja), or `profile` for the language of the user\'s profile'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "set-phone" -d 'Set the phone number (E.164, such as +441234567890) that webhook channels (SMS) send a user\'s codes to, or `none` to remove it'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "enable" -d 'Turn the login code on for a user'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "disable" -d 'Turn the login code off for a user (deactivate the second factor)'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "unlock" -d 'Clear a user\'s lockout and failure count'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "reset" -d 'Give a user a clean slate: forget the codes mailed to them (the hourly and daily mail caps start again), close their unused codes and clear their lockout'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "remove" -d 'Delete a user\'s record'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "show" -d 'Show a user\'s record and effective state'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "recovery-codes" -d 'Create a new set of 10 single-use recovery codes for a user, replacing the old set'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "list" -d 'List users otpd knows'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from host" -f -a "list" -d 'The addresses with wrong codes counted or a lockout in force, locked ones first, with how long each lock still holds'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from host" -f -a "unlock" -d 'Clear an address\'s lockout and failure count, so its users can log in again (audited as host_unlocked)'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from breakglass" -f -a "grant" -d 'Root only: for N minutes, USER\'s logins pass the code step (the password is still asked). Logged at warning level and audited at grant, on every use and at expiry'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from breakglass" -f -a "revoke" -d 'Root only: end USER\'s grant now'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from breakglass" -f -a "list" -d 'Admin: the grants that hold now'
complete -c otpctl -n "__fish_otpctl_using_subcommand help; and __fish_seen_subcommand_from store" -f -a "migrate" -d 'Root, otpd stopped: copy this host\'s SQLite state into the PostgreSQL database of the config\'s [store] section, in one transaction'
