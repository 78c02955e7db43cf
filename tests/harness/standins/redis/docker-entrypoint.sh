#!/bin/sh
# Entrypoint of the redis stand-in: the official image's documented behaviour, written anew.
# `redis-server` (or options, or a .conf file, which imply it) started as root fixes ownership
# of /data and re-executes itself as redis (UID 999); any other command runs as given. A
# default umask becomes 0077. The official image builds Redis with protected mode off (other
# containers reach it with no password); Debian's is built with it on, so it is switched off
# here, unless the command line sets it.
set -eu

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi

if [ "${1:-}" = redis-server ] && [ "$(id -u)" = 0 ]; then
  find . \! -user redis -exec chown redis '{}' +
  exec gosu redis "$0" "$@"
fi

if [ "$(umask)" = 0022 ]; then
  umask 0077
fi

if [ "${1:-}" = redis-server ]; then
  case " $* " in
    *" --protected-mode "*) ;;
    *) set -- "$@" --protected-mode no ;;
  esac
fi

exec "$@"
