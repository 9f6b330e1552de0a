#!/bin/sh
# As the official image: /etc/nginx/templates/X.template -> /etc/nginx/conf.d/X with envsubst,
# substituting only the variables whose names match NGINX_ENVSUBST_FILTER.
set -e
filter="${NGINX_ENVSUBST_FILTER:-}"
defined_envs=$(printf '${%s} ' $(awk "END { for (name in ENVIRON) { print ( name ~ /${filter}/ ) ? name : \"\" } }" < /dev/null))
for template in /etc/nginx/templates/*.template; do
    [ -f "$template" ] || continue
    output="/etc/nginx/conf.d/$(basename "$template" .template)"
    echo "$0: rendering $template to $output"
    envsubst "$defined_envs" < "$template" > "$output"
done
