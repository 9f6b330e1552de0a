# syntax=docker/dockerfile:1
#
# avatarchat images. Three targets:
#   frontend        - builds the static frontend (if frontend/package.json exists)
#   app             - the six aiohttp services under supervisord (port 3000 = gateway)
#   frontend-nginx  - nginx serving the built frontend and proxying /api/ to the gateway
#
# Build: docker build --target app -t avatarchat-app .
#        docker build --target frontend-nginx -t avatarchat-frontend .

############################
# Stage: frontend (build)  #
############################
FROM node:20-bookworm-slim AS frontend
WORKDIR /src
COPY frontend/ ./
# Without frontend/package.json there is nothing to build: dist/ is created empty (nginx
# then only answers /nginx-health and proxies /api/).
RUN if [ -f package.json ]; then \
        npm ci --no-audit --no-fund && npm run build; \
    else \
        mkdir -p dist; \
    fi

############################
# Stage: app (Python)      #
############################
FROM python:3.11-slim-bookworm AS app

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOG_DIR=/tmp/avatarchat-logs \
    SUPERVISOR_RUN_DIR=/tmp \
    AVATAR_STORAGE_DIR=/data/avatars

# Non-root runtime user. -l: do not add the user to lastlog/faillog (a high uid would
# otherwise create a huge sparse file in the image).
RUN groupadd --system --gid 10001 app \
    && useradd --system -l --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /data/avatars \
    && chown app:app /data/avatars

WORKDIR /app

COPY pyproject.toml constraints.txt ./
COPY common/ ./common/
COPY services/ ./services/
COPY scripts/ ./scripts/
COPY supervisord.conf ./

# Installs the project and its pinned dependencies (declared in pyproject.toml).
RUN pip install --no-cache-dir -c constraints.txt .

# uid:gid of the `app` user created above; numeric so that runtimes enforcing
# runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

EXPOSE 3000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/health', timeout=4).status == 200 else 1)"]

CMD ["python", "-m", "scripts.start_app"]

############################
# Stage: frontend-nginx    #
############################
FROM nginx:1.27-alpine AS frontend-nginx

# The official image renders /etc/nginx/templates/*.template with envsubst into
# /etc/nginx/conf.d/ at start. Only variables matching the filter are substituted, so
# nginx's own $variables are never touched.
# (The filter is a plain prefix so it works with both the awk- and the perl-based
# versions of the image's 20-envsubst-on-templates.sh.)
ENV AVATARCHAT_GATEWAY=app:3000 \
    AVATARCHAT_LISTEN=8080 \
    AVATARCHAT_STATIC_ROOT=/usr/share/nginx/html \
    AVATARCHAT_ACCESS_LOG=/var/log/nginx/access.log \
    NGINX_ENVSUBST_FILTER=AVATARCHAT_

COPY frontend/nginx.conf.template /etc/nginx/templates/default.conf.template
COPY --from=frontend /src/dist /usr/share/nginx/html

EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["wget", "-qO-", "http://127.0.0.1:8080/nginx-health"]
