#!/bin/sh
# Prometheus' start in its container (compose.monitoring.yaml): the intervals and retention from
# .env (PROMETHEUS_*), each bad value one `error:` line naming the variable and exit status 3,
# as the other containers' settings do. Prometheus expands no environment variables in its
# configuration file, so a set interval is written into a copy of prometheus.yml in OUTPUT_DIR
# (beside a link to the rules, which the file names relative to itself); unset, the file's own
# value stays. POSIX sh: the official image has only busybox's.
#
#   start.sh OUTPUT_DIR PROMETHEUS [ARGUMENT...]
#
# runs PROMETHEUS with the configuration, the retention and the arguments given.
set -o errexit -o nounset

fail() {
  echo "error: $*" >&2
  exit 3
}

[ $# -ge 2 ] || fail "usage: start.sh OUTPUT_DIR PROMETHEUS [ARGUMENT...]"
output_dir=$1
shift
here=$(cd "$(dirname "$0")" && pwd)

# duration NAME VALUE: one of Prometheus' durations, a whole number and a unit.
duration() {
  printf '%s' "$2" | grep -Eqx '[1-9][0-9]{0,5}(ms|s|m|h|d|w|y)' ||
    fail "$1='$2' is not a duration like 15s, 1m or 30d"
  printf '%s' "$2"
}

# interval NAME VALUE: a duration of at most a minute: the alerts' rates read 5-minute windows
# (alerts.yml), which need several samples each; at 2m30s and more they hold fewer than two,
# and those alerts could never fire.
interval() {
  value=$(duration "$1" "$2")
  number=${value%%[a-z]*}
  case ${value#"$number"} in
    ms) seconds=0 ;;
    s) seconds=$number ;;
    m) seconds=$((number * 60)) ;;
    *) seconds=$((60 + 1)) ;;
  esac
  [ "$seconds" -le 60 ] ||
    fail "$1='$2' is longer than 1m: the alerts' 5-minute rates need several samples each"
  printf '%s' "$value"
}

# size NAME VALUE: bytes in one of Prometheus' units.
size() {
  printf '%s' "$2" | grep -Eqx '[1-9][0-9]{0,5}(B|KB|MB|GB|TB)' ||
    fail "$1='$2' is not a size like 512MB or 2GB"
  printf '%s' "$2"
}

retention_time=$(duration PROMETHEUS_RETENTION_TIME "${PROMETHEUS_RETENTION_TIME:-30d}")
retention_size=$(size PROMETHEUS_RETENTION_SIZE "${PROMETHEUS_RETENTION_SIZE:-2GB}")
# A sed script that rewrites the global block's two lines, the only ones at that indentation
# with those names.
script=
if [ -n "${PROMETHEUS_SCRAPE_INTERVAL:-}" ]; then
  interval=$(interval PROMETHEUS_SCRAPE_INTERVAL "$PROMETHEUS_SCRAPE_INTERVAL")
  script="${script}s/^  scrape_interval: .*/  scrape_interval: $interval/
"
fi
if [ -n "${PROMETHEUS_EVALUATION_INTERVAL:-}" ]; then
  interval=$(interval PROMETHEUS_EVALUATION_INTERVAL "$PROMETHEUS_EVALUATION_INTERVAL")
  script="${script}s/^  evaluation_interval: .*/  evaluation_interval: $interval/
"
fi

sed "$script" "$here/prometheus.yml" >"$output_dir/prometheus.yml"
ln -sf "$here/alerts.yml" "$output_dir/alerts.yml"

exec "$@" --config.file="$output_dir/prometheus.yml" \
  --storage.tsdb.retention.time="$retention_time" \
  --storage.tsdb.retention.size="$retention_size"
