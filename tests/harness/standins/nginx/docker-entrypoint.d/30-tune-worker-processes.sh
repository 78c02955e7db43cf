#!/bin/sh
# With NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE set, sets worker_processes to the CPUs this
# container may use (its cgroup CPU quota, else the online CPUs) instead of every host CPU.
set -eu

me=$(basename "$0")
conf=/etc/nginx/nginx.conf

log() {
    [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$me: info: $*"
}

[ -n "${NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE:-}" ] || exit 0
if ! touch "$conf" 2>/dev/null; then
    log "can not modify $conf (read-only file system?)"
    exit 0
fi

cpus=$(nproc)
quota=
if [ -f /sys/fs/cgroup/cpu.max ]; then
    read -r quota period </sys/fs/cgroup/cpu.max
    [ "$quota" != max ] || quota=
elif [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
    quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)
    period=$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)
    [ "$quota" -gt 0 ] || quota=
fi
if [ -n "$quota" ]; then
    limited=$(((quota + period - 1) / period))
    [ "$limited" -ge "$cpus" ] || cpus=$limited
fi

sed -i -E "s/^(worker_processes\s+)\S+;/\1$cpus;/" "$conf"
log "worker_processes set to $cpus"
