#!/bin/sh
# Adds an IPv6 listener to the shipped default.conf, but only if IPv6 exists here, the file is
# writable and nobody has changed it.
set -eu

me=$(basename "$0")
conf=/etc/nginx/conf.d/default.conf
pristine=/usr/share/nginx/default.conf.md5

log() {
    [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$me: info: $*"
}

if [ ! -f /proc/net/if_inet6 ]; then
    log "ipv6 not available"
elif [ ! -f "$conf" ]; then
    log "$conf is not a file or does not exist"
elif ! touch "$conf" 2>/dev/null; then
    log "can not modify $conf (read-only file system?)"
elif grep -q 'listen  \[::\]:80;' "$conf"; then
    log "IPv6 listen already enabled"
elif ! md5sum --check --status "$pristine" 2>/dev/null; then
    log "$conf differs from the packaged version"
else
    sed -i -E 's,listen       80;,listen       80;\n    listen  [::]:80;,' "$conf"
    log "Enabled listen on IPv6 in $conf"
fi
