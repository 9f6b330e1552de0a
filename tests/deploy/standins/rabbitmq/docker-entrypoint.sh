#!/bin/sh
# Writes the default user from RABBITMQ_DEFAULT_USER/PASS into rabbitmq.conf (as the official
# image does), then runs the broker as the rabbitmq user in the foreground.
set -e
if [ "$1" = "rabbitmq-server" ]; then
    {
        echo "listeners.tcp.default = 5672"
        [ -n "${RABBITMQ_DEFAULT_USER:-}" ] && echo "default_user = ${RABBITMQ_DEFAULT_USER}"
        [ -n "${RABBITMQ_DEFAULT_PASS:-}" ] && echo "default_pass = ${RABBITMQ_DEFAULT_PASS}"
        echo "default_vhost = ${RABBITMQ_DEFAULT_VHOST:-/}"
    } > /etc/rabbitmq/rabbitmq.conf
    chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
    export HOME=/var/lib/rabbitmq
    exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups /usr/lib/rabbitmq/bin/rabbitmq-server
fi
exec "$@"
