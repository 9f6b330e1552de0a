#!/bin/sh
# As the official image's entrypoint: source *.envsh (so they can export variables for the
# templates) and run *.sh from /docker-entrypoint.d in order, then start nginx.
set -e
if [ "$1" = "nginx" ]; then
    for f in $(find /docker-entrypoint.d/ -follow -type f | sort -V); do
        case "$f" in
            *.envsh) if [ -x "$f" ]; then echo "$0: sourcing $f"; . "$f"; fi ;;
            *.sh) if [ -x "$f" ]; then echo "$0: running $f"; "$f"; fi ;;
        esac
    done
fi
exec "$@"
