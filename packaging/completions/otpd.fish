# fish completion for otpd(8)
complete -c otpd -l config -r -F -d 'configuration file'
complete -c otpd -l check-config -d 'check the configuration file and exit'
complete -c otpd -s h -l help -d 'print help'
complete -c otpd -s V -l version -d 'print the version'
