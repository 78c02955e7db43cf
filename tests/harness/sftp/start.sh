#!/bin/sh
# A host key of its own, made at the container's first start and kept across restarts like a
# real server's (printed first, for the test's known_hosts), then sshd in the foreground. The
# key to authorize is AUTHORIZED_KEY.
set -eu
host_key=/etc/ssh/ssh_host_ed25519_key
[ -s "$host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$host_key"
install -d -m 0755 /etc/ssh/authorized_keys
printf '%s\n' "$AUTHORIZED_KEY" >/etc/ssh/authorized_keys/offsite
chmod 0644 /etc/ssh/authorized_keys/offsite
echo "host key: $(cat "$host_key.pub")"
exec /usr/sbin/sshd -D -e
