#!/bin/sh
# Alertmanager's configuration, written from the ALERTMANAGER_* settings (.env.example) when its
# container starts: Alertmanager expands no environment variables in its file (its maintainers
# point to *_file fields instead: prometheus/alertmanager#2855). Both receivers are optional,
# a webhook and mail; without either, alerts are only shown by Alertmanager itself.
#
#   render-config.sh OUTPUT [COMMAND [ARGUMENT...]]
#
# writes OUTPUT (mode 0600: it may hold the webhook's secret URL), then runs COMMAND in its
# place, e.g. `alertmanager --config.file=OUTPUT`. A bad value stops it with one `error:` line
# naming the variable and exit status 3, as web's and nginx's settings do. POSIX sh: the
# official image has only busybox's.
set -o errexit -o nounset

fail() {
  echo "error: $*" >&2
  exit 3
}

[ $# -ge 1 ] || fail "usage: render-config.sh OUTPUT [COMMAND [ARGUMENT...]]"
output=$1
shift

# plain NAME VALUE: VALUE goes into a double-quoted YAML string, which it must not leave.
plain() {
  case $2 in
    *[\"\\]* | *'
'*) fail "$1 must not contain double quotes, backslashes or line breaks" ;;
  esac
}

# boolean NAME VALUE: `true` or `false`, from the words Django accepts (config/env.py).
boolean() {
  case $(printf '%s' "$2" | tr '[:upper:]' '[:lower:]') in
    1 | true | yes | on) printf true ;;
    0 | false | no | off) printf false ;;
    *) fail "$1='$2' is not a boolean; use one of true/false, yes/no, on/off, 1/0" ;;
  esac
}

# mail_address NAME VALUE: one address, nothing around it.
mail_address() {
  printf '%s' "$2" | grep -Eqx '[^@[:space:]<>,"]+@[^@[:space:]<>,"]+' ||
    fail "$1 entry '$2' is not a mail address like ops@example.org"
}

webhook_url=${ALERTMANAGER_WEBHOOK_URL:-}
email_to=${ALERTMANAGER_EMAIL_TO:-}
email_from=${ALERTMANAGER_EMAIL_FROM:-}
smarthost=${ALERTMANAGER_SMTP_SMARTHOST:-}
smtp_username=${ALERTMANAGER_SMTP_USERNAME:-}
smtp_password_file=${ALERTMANAGER_SMTP_PASSWORD_FILE:-}
smtp_require_tls=$(boolean ALERTMANAGER_SMTP_REQUIRE_TLS "${ALERTMANAGER_SMTP_REQUIRE_TLS:-true}")

if [ -n "$webhook_url" ]; then
  printf '%s' "$webhook_url" | grep -Eqx 'https?://[^[:space:]]+' ||
    fail "ALERTMANAGER_WEBHOOK_URL is not an http:// or https:// URL"
fi

if [ -n "$email_to" ]; then
  case ",$email_to," in
    *,,*) fail "ALERTMANAGER_EMAIL_TO='$email_to' has an empty entry; list addresses" \
      "separated by single commas" ;;
  esac
  for address in $(printf '%s' "$email_to" | tr ',' ' '); do
    mail_address ALERTMANAGER_EMAIL_TO "$address"
  done
  [ -n "$email_from" ] || fail "ALERTMANAGER_EMAIL_TO is set but ALERTMANAGER_EMAIL_FROM is" \
    "not; set the address alerts are mailed from, e.g. alerts@example.org"
  mail_address ALERTMANAGER_EMAIL_FROM "$email_from"
  [ -n "$smarthost" ] || fail "ALERTMANAGER_EMAIL_TO is set but ALERTMANAGER_SMTP_SMARTHOST" \
    "is not; set the SMTP server as host:port, e.g. smtp.example.org:587"
  printf '%s' "$smarthost" | grep -Eqx '([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}' ||
    fail "ALERTMANAGER_SMTP_SMARTHOST='$smarthost' is not host:port like smtp.example.org:587"
  case ${smtp_username:+user}${smtp_password_file:+password} in
    user | password)
      fail "ALERTMANAGER_SMTP_USERNAME and ALERTMANAGER_SMTP_PASSWORD_FILE go together; set" \
        "both to sign in to the SMTP server, or neither"
      ;;
  esac
  if [ -n "$smtp_password_file" ] && [ ! -r "$smtp_password_file" ]; then
    fail "ALERTMANAGER_SMTP_PASSWORD_FILE points at $smtp_password_file, which is missing" \
      "or not readable by UID $(id -u)"
  fi
else
  for setting in "ALERTMANAGER_EMAIL_FROM=$email_from" "ALERTMANAGER_SMTP_SMARTHOST=$smarthost" \
    "ALERTMANAGER_SMTP_USERNAME=$smtp_username" \
    "ALERTMANAGER_SMTP_PASSWORD_FILE=$smtp_password_file"; do
    name=${setting%%=*}
    [ -z "${setting#*=}" ] || fail "$name is set but ALERTMANAGER_EMAIL_TO is not; set whom" \
      "alerts are mailed to, or unset $name"
  done
fi
for setting in "ALERTMANAGER_WEBHOOK_URL=$webhook_url" "ALERTMANAGER_EMAIL_TO=$email_to" \
  "ALERTMANAGER_EMAIL_FROM=$email_from" "ALERTMANAGER_SMTP_SMARTHOST=$smarthost" \
  "ALERTMANAGER_SMTP_USERNAME=$smtp_username" \
  "ALERTMANAGER_SMTP_PASSWORD_FILE=$smtp_password_file"; do
  plain "${setting%%=*}" "${setting#*=}"
done

if [ -z "$webhook_url" ] && [ -z "$email_to" ]; then
  echo "notice: neither ALERTMANAGER_WEBHOOK_URL nor ALERTMANAGER_EMAIL_TO is set: alerts are" \
    "only shown by Alertmanager (docs/operations.md, Monitoring)" >&2
fi

umask 077
{
  echo "# Written by render-config.sh from ALERTMANAGER_* when Alertmanager started: edit .env."
  echo "global:"
  echo "  resolve_timeout: 5m"
  if [ -n "$email_to" ]; then
    echo "  smtp_smarthost: \"$smarthost\""
    echo "  smtp_from: \"$email_from\""
    echo "  smtp_require_tls: $smtp_require_tls"
    if [ -n "$smtp_username" ]; then
      echo "  smtp_auth_username: \"$smtp_username\""
      echo "  smtp_auth_password_file: \"$smtp_password_file\""
    fi
  fi
  cat <<'ROUTE'
route:
  receiver: operators
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    # The site is down or failing now: reminded every hour, not every four.
    - matchers: ['severity="page"']
      receiver: operators
      repeat_interval: 1h
inhibit_rules:
  # A site that is down explains its errors, its slowness and a busy gunicorn: one page.
  - source_matchers: ['alertname="SiteDown"']
    target_matchers: ['alertname=~"HighErrorRatio|SlowResponses|WebSaturated"']
receivers:
  - name: operators
ROUTE
  if [ -n "$webhook_url" ]; then
    echo "    webhook_configs:"
    echo "      - url: \"$webhook_url\""
    echo "        send_resolved: true"
    echo "        max_alerts: 20"
  fi
  if [ -n "$email_to" ]; then
    echo "    email_configs:"
    echo "      - to: \"$email_to\""
    echo "        send_resolved: true"
  fi
} >"$output"

[ $# -eq 0 ] || exec "$@"
