#!/bin/sh
# A fresh host key at each start (printed first, for the test's known_hosts), then sshd in the
# foreground. The key to authorize is AUTHORIZED_KEY.
set -eu
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
install -d -m 0755 /etc/ssh/authorized_keys
printf '%s\n' "$AUTHORIZED_KEY" >/etc/ssh/authorized_keys/offsite
chmod 0644 /etc/ssh/authorized_keys/offsite
echo "host key: $(cat /etc/ssh/ssh_host_ed25519_key.pub)"
exec /usr/sbin/sshd -D -e
