#!/bin/sh
# Renders the site configuration into /run/nginx from the active release's templates (the site
# volume's `current`, published by scripts/publish_release.py) and the environment: at container
# start (the image's /docker-entrypoint.sh runs it before nginx) and at every reload-site.
# Every value is checked here, so a bad one stops the container with one `error:` line naming
# the variable instead of an nginx parse error. POSIX sh, like the official entrypoint.
# shellcheck disable=SC2034 # the NGINX_* values are exported by name (rendered_variables)
set -o errexit -o nounset
# Lists are split on commas and spaces below: `*` (any host) must stay a `*`.
set -o noglob

site_dir=/srv/site
output_dir=/run/nginx
tls_dir=/etc/nginx/tls

fail() {
  echo "error: $*" >&2
  exit 3
}

# whole_number NAME VALUE MIN MAX: VALUE is a whole number within [MIN, MAX].
whole_number() {
  case $2 in
    '' | *[!0-9]*) fail "$1='$2' is not a whole number" ;;
  esac
  # Leading zeros would make the shell read the number as octal.
  number=$(printf '%s' "$2" | sed 's/^0*\([0-9]\)/\1/')
  if [ "${#number}" -gt 9 ] || [ "$number" -lt "$3" ] || [ "$number" -gt "$4" ]; then
    fail "$1=$2 is out of range; use a value from $3 to $4"
  fi
  printf '%s' "$number"
}

# boolean NAME VALUE: `true` or `false`, from the words Django accepts (config/env.py).
boolean() {
  word=$(printf '%s' "$2" | tr '[:upper:]' '[:lower:]' | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
  case $word in
    1 | true | yes | on) printf true ;;
    0 | false | no | off) printf false ;;
    *) fail "$1='$2' is not a boolean; use one of true/false, yes/no, on/off, 1/0" ;;
  esac
}

# The server names are Django's ALLOWED_HOSTS, in nginx's syntax: `.example.org` means the
# domain and its subdomains in both, `*` (any host) becomes a regular expression.
server_names() {
  names=
  for host in $(printf '%s' "${DJANGO_ALLOWED_HOSTS:-}" | tr ',' ' '); do
    case $host in
      '*') host='~^.+$' ;;
      \[*\]) printf '%s' "$host" | grep -Eqx '\[[0-9A-Fa-f:.]+\]' || host_error "$host" ;;
      *) printf '%s' "$host" | grep -Eqx '\.?[A-Za-z0-9_.-]+' || host_error "$host" ;;
    esac
    names="$names $host"
  done
  [ -n "$names" ] || fail "DJANGO_ALLOWED_HOSTS is not set; set it to the host names this site" \
    "answers to, comma-separated, e.g. cats.example.com"
  printf '%s' "${names# }"
}

# What a request for a host name nginx does not serve gets: until the operator has named the
# hosts (a first start: the VM's address typed into a browser), a page saying how (421);
# afterwards nothing at all (444: the connection closes unanswered), so scanners learn nothing.
# compose passes NGINX_HOSTS_CONFIGURED empty until DJANGO_ALLOWED_HOSTS is set in .env; the
# image run on its own, without the variable, has its hosts from whoever ran it.
unknown_host_status() {
  configured=${NGINX_HOSTS_CONFIGURED-true}
  if [ -n "$configured" ] && [ "$(boolean NGINX_HOSTS_CONFIGURED "$configured")" = true ]; then
    printf 444
    return 0
  fi
  echo "notice: DJANGO_ALLOWED_HOSTS is not set: serving only $1; a request for another host" \
    "name gets a page saying how to set it (./ops init, docs/operations.md, Quickstart)" >&2
  printf 421
}

host_error() {
  fail "DJANGO_ALLOWED_HOSTS entry '$1' is not a host name; list bare names without scheme," \
    "port or path, e.g. cats.example.com,.example.org"
}

# Addresses allowed to report the client's address, scheme and request id: the operator's load
# balancer (`./ops init --balancer` writes it). Unset or `none`, no one: each peer is the client,
# and a private range is never trusted unless named, because any host on the VM's network could
# then choose the address that rate limits and sign-in lockouts count. Said at every start, to
# stderr like the errors (the value goes to stdout): a trust decision is never silent.
trusted_proxies() {
  value=${NGINX_TRUSTED_PROXIES:-none}
  if [ "$value" = none ]; then
    said="NGINX_TRUSTED_PROXIES=none"
    [ -n "${NGINX_TRUSTED_PROXIES:-}" ] || said="NGINX_TRUSTED_PROXIES is not set"
    echo "notice: X-Forwarded-For, X-Forwarded-Proto and X-Request-ID are believed from no one" \
      "($said); behind a load balancer, set its address or subnet, or every visitor counts" \
      "as the balancer (docs/operations.md, Load balancer)" >&2
    return 0
  fi
  for range in $(printf '%s' "$value" | tr ',' ' '); do
    if ! valid_ipv4_range "$range" && ! valid_ipv6_range "$range"; then
      fail "NGINX_TRUSTED_PROXIES entry '$range' is not an IP address or network like" \
        "10.0.0.0/8; list them comma-separated, or set none"
    fi
    printf '%s\n' "$range"
  done
  echo "notice: X-Forwarded-For, X-Forwarded-Proto and X-Request-ID are believed from" \
    "NGINX_TRUSTED_PROXIES=$value only" >&2
}

valid_ipv4_range() {
  printf '%s' "$1" | grep -Eqx '([0-9]{1,3}\.){3}[0-9]{1,3}(/([0-9]|[12][0-9]|3[0-2]))?' || return 1
  for octet in $(printf '%s' "${1%/*}" | tr '.' ' '); do
    [ "$octet" -le 255 ] || return 1
  done
}

valid_ipv6_range() {
  printf '%s' "$1" | grep -Eqx '[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8]))?'
}

# The value goes into a double-quoted nginx string: no quotes, backslashes or `$` (variables).
content_security_policy() {
  value=${NGINX_CONTENT_SECURITY_POLICY:-"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"}
  case $value in
    *[\"\\\$]*) fail "NGINX_CONTENT_SECURITY_POLICY must not contain double quotes, backslashes or \$" ;;
    off) value= ;;
  esac
  printf '%s' "$value"
}

# Strict-Transport-Security as Django's SecurityMiddleware writes it, from Django's own variables
# with Django's defaults and range (config/settings.py): one setting for both. Empty when
# DJANGO_SECURE_HSTS_SECONDS is 0 (HSTS off), and nginx then adds none.
strict_transport_security() {
  seconds=$(whole_number DJANGO_SECURE_HSTS_SECONDS "${DJANGO_SECURE_HSTS_SECONDS:-31536000}" 0 63072000)
  subdomains=$(boolean DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS "${DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS:-false}")
  preload=$(boolean DJANGO_SECURE_HSTS_PRELOAD "${DJANGO_SECURE_HSTS_PRELOAD:-false}")
  [ "$seconds" -gt 0 ] || return 0
  value="max-age=$seconds"
  [ "$subdomains" = false ] || value="$value; includeSubDomains"
  [ "$preload" = false ] || value="$value; preload"
  printf '%s' "$value"
}

# TLS at nginx is on when a certificate and key are mounted (docs/operations.md, TLS).
tls_listener() {
  if [ ! -e "$tls_dir/tls.crt" ] && [ ! -e "$tls_dir/tls.key" ]; then
    return 0
  fi
  for file in "$tls_dir/tls.crt" "$tls_dir/tls.key"; do
    [ -r "$file" ] || fail "$file is missing or not readable by UID $(id -u); mount both" \
      "tls.crt and tls.key into $tls_dir, readable by that user"
  done
  printf 'listen %s ssl%s;\n    http2 on;\n    ssl_certificate %s;\n    ssl_certificate_key %s;' \
    "$NGINX_HTTPS_PORT" "$1" "$tls_dir/tls.crt" "$tls_dir/tls.key"
}

# worker_processes from the CPUs this container may use: its CPU quota (compose `cpus:`),
# else the CPUs it may run on, never the host's count as `auto` would (a big host would then
# start more workers than the container's pids limit allows). At most max_workers: each
# worker serves thousands of connections. The official image's autotune script cannot do this
# here: it edits nginx.conf, which is read-only.
max_workers=4

worker_processes() {
  cpus=$(nproc)
  quota=
  if [ -r /sys/fs/cgroup/cpu.max ]; then
    read -r quota period </sys/fs/cgroup/cpu.max
    [ "$quota" != max ] || quota=
  elif [ -r /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
    quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)
    period=$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)
    [ "$quota" -gt 0 ] || quota=
  fi
  if [ -n "$quota" ]; then
    limited=$(((quota + period - 1) / period))
    [ "$limited" -ge "$cpus" ] || cpus=$limited
  fi
  [ "$cpus" -le "$max_workers" ] || cpus=$max_workers
  printf '%s' "$cpus"
}

# The active release: its templates, and the web containers nginx sends requests to. Under
# compose, the active version's (each web container carries the network alias web-<version>,
# compose.yaml), so nginx sends no request to another version's containers, whichever are
# running. A swarm stack names its web service instead (NGINX_UPSTREAM_HOST, stack.yaml):
# there a task joins the service's DNS name only once healthy, and a rolling update replaces
# the tasks behind it (docs/swarm.md).
[ -d "$site_dir/current/nginx" ] || fail "no active release in $site_dir (the site volume);" \
  "the publish service, or ./ops deploy, publishes one"
templates=$site_dir/current/nginx
release=$(readlink "$site_dir/current")
if [ -n "${NGINX_UPSTREAM_HOST:-}" ]; then
  printf '%s' "$NGINX_UPSTREAM_HOST" | grep -Eqx '[A-Za-z0-9]([A-Za-z0-9_.-]{0,252})' ||
    fail "NGINX_UPSTREAM_HOST='$NGINX_UPSTREAM_HOST' is not a host name; name the web" \
      "service, e.g. web"
else
  NGINX_UPSTREAM_HOST=web-${release##*/}
fi

[ -n "${NGINX_LOCAL_RESOLVERS:-}" ] || fail "no DNS resolver found in /etc/resolv.conf;" \
  "nginx needs Docker's to find the web containers"

NGINX_HTTP_PORT=$(whole_number NGINX_HTTP_PORT "${NGINX_HTTP_PORT:-}" 1024 65535)
NGINX_HTTPS_PORT=$(whole_number NGINX_HTTPS_PORT "${NGINX_HTTPS_PORT:-}" 1024 65535)
# Django's default and maximum (config/settings.py; tests/stack/test_site.py compares them).
upload_max_mb=$(whole_number UPLOAD_MAX_MB "${UPLOAD_MAX_MB:-10}" 1 100)
# Room above Django's own photo limit for the multipart framing and the other form fields, so
# a photo just over the limit gets Django's form error rather than nginx's bare 413.
NGINX_CLIENT_MAX_BODY_SIZE="$((upload_max_mb + 1))m"
NGINX_SERVER_NAMES=$(server_names)
NGINX_UNKNOWN_HOST_STATUS=$(unknown_host_status "$NGINX_SERVER_NAMES")
ranges=$(trusted_proxies)
NGINX_REAL_IP_FROM=$(printf '%s\n' "$ranges" | sed -n 's/.\{1,\}/set_real_ip_from &;/p')
NGINX_TRUSTED_PROXY_RANGES=$(printf '%s\n' "$ranges" | sed -n 's/.\{1,\}/    & 1;/p')
NGINX_RATE_LIMIT=$(whole_number NGINX_RATE_LIMIT "${NGINX_RATE_LIMIT:-20}" 1 100000)
NGINX_RATE_BURST=$(whole_number NGINX_RATE_BURST "${NGINX_RATE_BURST:-40}" 0 100000)
NGINX_CONN_LIMIT=$(whole_number NGINX_CONN_LIMIT "${NGINX_CONN_LIMIT:-50}" 1 100000)
NGINX_LOGIN_RATE=$(whole_number NGINX_LOGIN_RATE "${NGINX_LOGIN_RATE:-10}" 1 6000)
NGINX_LOGIN_BURST=$(whole_number NGINX_LOGIN_BURST "${NGINX_LOGIN_BURST:-5}" 0 1000)
NGINX_KEEPALIVE_TIMEOUT=$(
  whole_number NGINX_KEEPALIVE_TIMEOUT "${NGINX_KEEPALIVE_TIMEOUT:-75}" 1 3600
)
NGINX_CONTENT_SECURITY_POLICY=$(content_security_policy)
NGINX_STRICT_TRANSPORT_SECURITY=$(strict_transport_security)
NGINX_TLS_DEFAULT_LISTEN=$(tls_listener " default_server")
NGINX_TLS_LISTEN=$(tls_listener "")
NGINX_WORKER_PROCESSES=$(worker_processes)

# The one list of values the templates may use: each is checked above, exported here, and the
# only names envsubst replaces (nginx's own $variables stay as they are).
rendered_variables='NGINX_HTTP_PORT NGINX_CLIENT_MAX_BODY_SIZE NGINX_SERVER_NAMES
  NGINX_REAL_IP_FROM NGINX_TRUSTED_PROXY_RANGES NGINX_RATE_LIMIT NGINX_RATE_BURST
  NGINX_CONN_LIMIT NGINX_LOGIN_RATE NGINX_LOGIN_BURST NGINX_KEEPALIVE_TIMEOUT
  NGINX_CONTENT_SECURITY_POLICY NGINX_STRICT_TRANSPORT_SECURITY NGINX_TLS_DEFAULT_LISTEN
  NGINX_TLS_LISTEN NGINX_LOCAL_RESOLVERS NGINX_WORKER_PROCESSES NGINX_UPSTREAM_HOST
  NGINX_UNKNOWN_HOST_STATUS'
substitutions=
for name in $rendered_variables; do
  export "${name?}"
  substitutions="$substitutions \${$name}"
done

for name in workers.conf site.conf probes.conf; do
  envsubst "$substitutions" <"$templates/$name.template" >"$output_dir/$name"
done
[ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] ||
  echo "$0: release ${release##*/} for host names: $NGINX_SERVER_NAMES;" \
    "$NGINX_WORKER_PROCESSES workers"
