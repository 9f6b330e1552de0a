-- Console users (issue 16): people who sign in with an email and a password (argon2id), each
-- with a role per tenant, and the server-side rows behind their sessions, invites and reset
-- links. Every token is random (256 bits) and only its SHA-256 is kept.
CREATE TABLE users (
    id             uuid PRIMARY KEY,
    email          text NOT NULL CHECK (email = lower(email)),  -- unique whatever its case
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz
);
CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE memberships (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, tenant_id)
);
CREATE INDEX memberships_tenant ON memberships (tenant_id, created_at);

-- A user's session works in one tenant at a time (switching changes tenant_id); the platform
-- admin's has no user and no tenant. Deleting the tenant deletes the sessions working in it.
CREATE TABLE console_sessions (
    id            uuid PRIMARY KEY,
    token_hash    bytea NOT NULL UNIQUE,
    user_id       uuid REFERENCES users (id) ON DELETE CASCADE,
    is_admin      boolean NOT NULL DEFAULT false,
    tenant_id     uuid REFERENCES tenants (id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    CHECK (is_admin = (user_id IS NULL))
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
CREATE INDEX console_sessions_tenant ON console_sessions (tenant_id);
CREATE INDEX console_sessions_last_seen ON console_sessions (last_seen_at);

CREATE TABLE invites (
    id          uuid PRIMARY KEY,
    token_hash  bytea NOT NULL UNIQUE,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email       text NOT NULL CHECK (email = lower(email)),
    role        text NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_by  uuid REFERENCES users (id) ON DELETE SET NULL,  -- null: the platform admin or an API key
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invites_tenant ON invites (tenant_id, created_at);

-- A reset link is made by an owner of one tenant, for one of its users.
CREATE TABLE password_resets (
    id          uuid PRIMARY KEY,
    token_hash  bytea NOT NULL UNIQUE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX password_resets_user ON password_resets (user_id);
