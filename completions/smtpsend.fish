complete -c smtpsend -s f -d 'Envelope sender address (MAIL FROM)' -r
complete -c smtpsend -s r -d 'Same as -f' -r
complete -c smtpsend -s F -d 'Full name of the sender, used when a From header is added' -r
complete -c smtpsend -s o -d 'Sendmail option: -oi is -i, -odq queues; others are accepted and ignored' -r
complete -c smtpsend -s O -d 'Sendmail long option (-O Name=value); accepted and ignored' -r
complete -c smtpsend -s b -d 'Mode: m deliver (default), p list queue, s SMTP on stdin, i rebuild aliases, v verify' -r
complete -c smtpsend -s q -d 'Process the queue (an interval argument is accepted and ignored)' -r
complete -c smtpsend -s N -d 'DSN: when to notify (never, or success,failure,delay)' -r
complete -c smtpsend -s R -d 'DSN: return full message or headers only (full|hdrs)' -r
complete -c smtpsend -s V -d 'DSN: envelope identifier' -r
complete -c smtpsend -s B -d 'Body type: 7BIT or 8BITMIME' -r
complete -c smtpsend -s C -d 'Sendmail flags taking a value that smtpsend ignores (-C -X -L -A -d; -h is taken out before, see [`filter_unknown_flags`])' -r
complete -c smtpsend -s X -r
complete -c smtpsend -s L -r
complete -c smtpsend -s A -r
complete -c smtpsend -s d -r
complete -c smtpsend -l subject -d 'Compose a MIME message: its Subject (UTF-8 is encoded per RFC 2047)' -r
complete -c smtpsend -l from -d 'Compose: the From header, `Name <addr>` or `addr` (default: the envelope sender)' -r
complete -c smtpsend -l cc -d 'Compose: Cc recipients (also added to the envelope)' -r
complete -c smtpsend -l bcc -d 'Compose: Bcc recipients (envelope only, never in a header)' -r
complete -c smtpsend -l body -d 'Compose: read the text body from FILE instead of standard input' -r -F
complete -c smtpsend -l html -d 'Compose: an HTML alternative to the text body' -r -F
complete -c smtpsend -l attach -d 'Compose: attach FILE (repeatable); its type comes from the extension' -r -F
complete -c smtpsend -l header -d 'Compose: an extra header, `Name: value` (repeatable)' -r
complete -c smtpsend -l host -d 'SMTP relay host; without one, mail goes straight to each domain\'s MX hosts' -r
complete -c smtpsend -l dns-server -d 'DNS server for MX lookups, IP[:PORT] (default: /etc/resolv.conf)' -r
complete -c smtpsend -l parallel -d 'Domains delivered at once on the direct route, each on a thread of its own; 1 delivers one domain after another (default 16)' -r
complete -c smtpsend -l mx-port -d 'Port of the MX hosts (default 25); a testing aid' -r
complete -c smtpsend -l dane -d 'DANE (TLSA records in DNSSEC-signed zones): on where published (default), off, or require' -r
complete -c smtpsend -l mta-sts -d 'MTA-STS (a domain\'s HTTPS-published TLS policy): on (default), off, or require' -r
complete -c smtpsend -l dnssec-trust-anchor -d 'DNSKEY records to validate DNSSEC from instead of the IANA root\'s keys' -r -F
complete -c smtpsend -l mta-sts-port -d 'HTTPS port of MTA-STS policy hosts (default 443); a testing aid' -r
complete -c smtpsend -l mta-sts-trust-file -d 'Certificates to trust for MTA-STS policy hosts besides the web PKI; a testing aid' -r -F
complete -c smtpsend -l port -d 'SMTP port (default: 587, 465 with --tls implicit, 25 with --tls off)' -r
complete -c smtpsend -l tls -d 'TLS: required (STARTTLS, verified), opportunistic, implicit (port 465) or off' -r -f -a "required\t'STARTTLS with a verified certificate (the relay default)'
opportunistic\t'STARTTLS when offered, unverified allowed (the MX default)'
implicit\t'TLS from the first byte, port 465 (RFC 8314)'
off\t'cleartext'"
complete -c smtpsend -l tls-trust-file -d 'PEM file with certificates to trust besides the built-in web PKI roots and the system CA store; "system": the system CA store alone' -r -F
complete -c smtpsend -l tls-fingerprint -d 'Trust the server only if its certificate has this SHA-256 fingerprint (hex)' -r
complete -c smtpsend -l user -d 'User name for SMTP AUTH; the password comes from the config or $SMTPSEND_PASSWORD' -r
complete -c smtpsend -l auth -d 'Force an AUTH mechanism: scram-sha-256, scram-sha-1, plain, login, xoauth2, oauthbearer, external or cram-md5' -r -f -a "scram-sha-256\t''
scram-sha-1\t''
plain\t''
login\t''
xoauth2\t''
oauthbearer\t''
external\t''
cram-md5\t''"
complete -c smtpsend -l tls-cert -d 'PEM client certificate to present in TLS (AUTH EXTERNAL, or relaying by certificate)' -r -F
complete -c smtpsend -l tls-key -d 'PEM private key of --tls-cert (default: the --tls-cert file); must be private' -r -F
complete -c smtpsend -l config -d 'Config file, TOML or msmtprc (default: $SMTPSEND_CONFIG, ~/.config/smtpsend/config.toml, /etc/smtpsend.conf, then ~/.msmtprc, ~/.config/msmtp/config, /etc/msmtprc)' -r -F
complete -c smtpsend -s a -l account -d 'Account from the config file' -r -f -a '(smtpsend config accounts 2>/dev/null)'
complete -c smtpsend -l ehlo -d 'Name to send with EHLO (default: /etc/mailname or the host name)' -r
complete -c smtpsend -l timeout -d 'Seconds to wait for each reply, instead of RFC 5321\'s per-command timeouts' -r
complete -c smtpsend -l connect-timeout -d 'Seconds to wait for the TCP connection (default 30)' -r
complete -c smtpsend -l deadline -d 'A deadline in seconds for a whole SMTP session, whatever the server does' -r
complete -c smtpsend -l queue-dir -d 'The queue directory (default /var/spool/smtpsend when writable, else $XDG_STATE_HOME/smtpsend/queue)' -r -F
complete -c smtpsend -l queue-remove -d 'Remove the queued message with this id' -r
complete -c smtpsend -l verify -d 'Ask the server whether ADDRESS is a mailbox (VRFY); 550/551/553 exits 67' -r
complete -c smtpsend -l expand -d 'Ask the server for the members of a mailing list (EXPN)' -r
complete -c smtpsend -l etrn -d 'Ask the server to start delivering its queue for DOMAIN (ETRN, RFC 1985)' -r
complete -c smtpsend -l help-server -d 'Send HELP (with --help-server=TOPIC, HELP TOPIC) and show the reply' -r
complete -c smtpsend -l logfile -d 'Append one key=value line per delivery attempt to FILE (created mode 0600)' -r -F
complete -c smtpsend -s t -d 'Read recipients from the To, Cc and Bcc headers (and remove Bcc)'
complete -c smtpsend -s i -d 'Do not treat a line with a single dot as the end of the message'
complete -c smtpsend -l read-envelope-from -d 'Envelope sender from the message\'s From header, choosing the account whose `from` matches it (msmtp\'s --read-envelope-from, for mutt)'
complete -c smtpsend -s v -l verbose -d 'Print the SMTP dialogue on stderr (passwords are never shown)'
complete -c smtpsend -l dry-run -d 'Read the message and show what a send would do (envelope sender, each recipient with its route, the header section as sent), connecting to nothing'
complete -c smtpsend -s U -d 'Sendmail flags without a value that smtpsend ignores (-U -G -n -m -e)'
complete -c smtpsend -s G
complete -c smtpsend -s n
complete -c smtpsend -s m
complete -c smtpsend -l direct -d 'Deliver to each recipient domain\'s MX hosts even when a relay is configured'
complete -c smtpsend -l oauth -d '$SMTPSEND_PASSWORD holds an OAuth 2.0 access token (XOAUTH2, OAUTHBEARER), not a password; accounts with oauth_* keys need no flag'
complete -c smtpsend -l insecure-auth -d 'Allow AUTH over a connection without TLS (credentials in cleartext)'
complete -c smtpsend -l queue -d 'Queue the message without trying to send it (as -odq)'
complete -c smtpsend -l no-queue -d 'Never queue: a temporary failure exits 75 and the caller keeps the message'
complete -c smtpsend -l flush -d 'Try every queued message now, as sendmail -q and postqueue -f do (same as -q)'
complete -c smtpsend -l due -d 'With --flush/-q: try only the messages whose retry time has come (for timers)'
complete -c smtpsend -l all -d 'With --flush/-q: every message, whatever its retry time (the default; kept for scripts written when -q only took what was due)'
complete -c smtpsend -l queue-remove-all -d 'Remove every queued message (needs --yes)'
complete -c smtpsend -l yes -d 'Confirm --queue-remove-all'
complete -c smtpsend -l queue-runner -d 'Run as the spool\'s background queue runner until it is empty (what a sender starts after queueing; not for people)'
complete -c smtpsend -l check -d 'Try before you send: TLS, AUTH and MAIL FROM as a send would, then RSET; nothing sent'
complete -c smtpsend -l serverinfo -d 'Show the server\'s greeting, EHLO capabilities before and after STARTTLS, TLS version and cipher, certificate and AUTH methods; with a DOMAIN argument instead of --host, of the domain\'s first reachable MX host'
complete -c smtpsend -l noop -d 'Send NOOP and show the reply'
complete -c smtpsend -l syslog -d 'Log each delivery attempt to syslog (facility mail)'
complete -c smtpsend -l no-pipelining -d 'Do not use PIPELINING even when offered'
complete -c smtpsend -s h -l help -d 'Print help (-h: a summary). Called as sendmail, -h is the hop count and is ignored'
complete -c smtpsend -l version -d 'Print version'
