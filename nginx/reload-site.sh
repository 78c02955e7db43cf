#!/bin/sh
# reload-site: apply the active release (the site volume's `current`) to the running nginx
# without refusing a connection: render it, test it, reload, then wait until the previous
# workers have finished the requests they held. tools/ops runs it (`docker compose exec nginx
# reload-site`) when it switches releases. A configuration nginx refuses leaves the running one
# in place: exit 1 with nginx's own error line.
set -o errexit -o nounset

rendered=/run/nginx
kept=$rendered/previous
render=/docker-entrypoint.d/40-render-site-config.sh

fail() {
  echo "reload-site: $*" >&2
  exit 1
}

# worker_pids: the running generation's workers, from their process titles.
worker_pids() {
  for cmdline in /proc/[0-9]*/cmdline; do
    title=$(tr '\0' ' ' <"$cmdline" 2>/dev/null) || continue
    case $title in
      "nginx: worker process"*) pid=${cmdline#/proc/} && echo "${pid%/cmdline}" ;;
    esac
  done
}

# alive PID...: whether any of them still runs.
alive() {
  for pid; do
    [ -d "/proc/$pid" ] && return 0
  done
  return 1
}

restore() {
  cp "$kept"/*.conf "$rendered"/
}

# Old workers have nginx.conf's worker_shutdown_timeout to finish; a little more for the exit.
shutdown_s=$(sed -n 's/^worker_shutdown_timeout \([0-9]*\)s;.*/\1/p' /etc/nginx/nginx.conf)
drain_bound_s=$((${shutdown_s:-10} + 5))

# What the image's entrypoint exports before rendering at start (Docker's DNS server).
# shellcheck source=/dev/null
. /docker-entrypoint.d/15-local-resolvers.envsh

mkdir -p "$kept"
cp "$rendered"/*.conf "$kept"/
NGINX_ENTRYPOINT_QUIET_LOGS=1 "$render" || { restore && fail "the release's settings are refused (above)"; }
if ! tested=$(nginx -t 2>&1); then
  restore
  fail "nginx refuses the release's configuration: $(printf '%s\n' "$tested" | grep emerg | head -n 1)"
fi

previous=$(worker_pids)
started=$(date +%s)
nginx -s reload
# shellcheck disable=SC2086 # a list of process ids
while alive $previous; do
  [ $(($(date +%s) - started)) -lt "$drain_bound_s" ] ||
    fail "previous workers still running after ${drain_bound_s}s"
  sleep 0.2
done
echo "reload-site: serving $(readlink /srv/site/current | sed 's#.*/##'); previous workers done after $(($(date +%s) - started))s"
