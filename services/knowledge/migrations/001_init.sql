-- pgvector is created by the platform's database setup (it needs a superuser); this fails
-- loudly if the server does not have it.
CREATE EXTENSION IF NOT EXISTS vector;
