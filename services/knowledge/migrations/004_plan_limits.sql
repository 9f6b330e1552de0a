-- The plan's document limit is counted per tenant inside the insert transaction, and running
-- crawls are counted per tenant; a crawl's heartbeat tells a running crawl from one whose
-- process died without recording it.
CREATE INDEX documents_tenant ON documents (tenant_id);
ALTER TABLE crawls ADD COLUMN heartbeat_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX crawls_tenant_running ON crawls (tenant_id, heartbeat_at) WHERE status = 'running';
