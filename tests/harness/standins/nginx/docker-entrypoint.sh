#!/bin/sh
# Entrypoint of the nginx stand-in, like the official image's: when the command is nginx, run
# /docker-entrypoint.d/*.sh and source *.envsh (executable ones, in version order), then exec.
# Only errexit, like the official script: the *.envsh files are sourced into this shell.
set -e

log() {
    [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$@"
}

if [ "${1:-}" = nginx ] || [ "${1:-}" = nginx-debug ]; then
    if find /docker-entrypoint.d/ -mindepth 1 -maxdepth 1 -type f -print -quit 2>/dev/null | grep -q .; then
        log "$0: /docker-entrypoint.d/ is not empty, will attempt to perform configuration"
        log "$0: Looking for shell scripts in /docker-entrypoint.d/"
        find /docker-entrypoint.d/ -follow -type f -print | sort -V | while read -r script; do
            case $script in
                *.envsh)
                    if [ -x "$script" ]; then
                        log "$0: Sourcing $script"
                        # shellcheck disable=SC1090
                        . "$script"
                    else
                        log "$0: Ignoring $script, not executable"
                    fi
                    ;;
                *.sh)
                    if [ -x "$script" ]; then
                        log "$0: Launching $script"
                        "$script"
                    else
                        log "$0: Ignoring $script, not executable"
                    fi
                    ;;
                *) log "$0: Ignoring $script" ;;
            esac
        done
        log "$0: Configuration complete; ready for start up"
    else
        log "$0: No files found in /docker-entrypoint.d/, skipping configuration"
    fi
fi

exec "$@"
