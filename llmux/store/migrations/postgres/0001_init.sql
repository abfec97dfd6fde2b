-- Governance schema for the Postgres store (distributed mode).
-- Datetimes are TIMESTAMPTZ, days DATE, JSON is JSONB except the raw response texts;
-- `data` holds the full record as JSON, the other columns are indexes and the
-- store-maintained counters, which win over the JSON copy.

CREATE TABLE budgets (
    budget_id TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    data JSONB NOT NULL
);

CREATE TABLE organizations (
    organization_id TEXT PRIMARY KEY,
    organization_alias TEXT,
    budget_id TEXT,
    budget_duration TEXT,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_reset_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    data JSONB NOT NULL
);
CREATE INDEX organizations_reset ON organizations (budget_reset_at);

CREATE TABLE teams (
    team_id TEXT PRIMARY KEY,
    team_alias TEXT,
    organization_id TEXT,
    budget_id TEXT,
    blocked BOOLEAN NOT NULL DEFAULT FALSE,
    budget_duration TEXT,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_reset_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    data JSONB NOT NULL
);
CREATE INDEX teams_org ON teams (organization_id);
CREATE INDEX teams_alias ON teams (team_alias);
CREATE INDEX teams_reset ON teams (budget_reset_at);

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    user_email TEXT,
    user_role TEXT NOT NULL,
    organization_id TEXT,
    budget_id TEXT,
    budget_duration TEXT,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_reset_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    data JSONB NOT NULL
);
CREATE INDEX users_email ON users (user_email);
CREATE INDEX users_org ON users (organization_id);
CREATE INDEX users_reset ON users (budget_reset_at);

CREATE TABLE end_users (
    user_id TEXT PRIMARY KEY,
    alias TEXT,
    budget_id TEXT,
    blocked BOOLEAN NOT NULL DEFAULT FALSE,
    budget_duration TEXT,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_reset_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    data JSONB NOT NULL
);
CREATE INDEX end_users_reset ON end_users (budget_reset_at);

CREATE TABLE keys (
    token TEXT PRIMARY KEY,
    key_alias TEXT,
    user_id TEXT,
    team_id TEXT,
    organization_id TEXT,
    budget_id TEXT,
    blocked BOOLEAN NOT NULL DEFAULT FALSE,
    budget_duration TEXT,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_reset_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    data JSONB NOT NULL
);
CREATE INDEX keys_alias ON keys (key_alias);
CREATE INDEX keys_user ON keys (user_id);
CREATE INDEX keys_team ON keys (team_id);
CREATE INDEX keys_org ON keys (organization_id);
CREATE INDEX keys_reset ON keys (budget_reset_at);

CREATE TABLE team_members (
    team_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    role TEXT NOT NULL,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    data JSONB NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);

CREATE TABLE org_members (
    organization_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    data JSONB NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX org_members_user ON org_members (user_id);

CREATE TABLE spend_logs (
    request_id TEXT PRIMARY KEY,
    token TEXT,
    user_id TEXT,
    team_id TEXT,
    organization_id TEXT,
    end_user TEXT,
    model_group TEXT,
    deployment TEXT,
    provider TEXT,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    cost DOUBLE PRECISION NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    ttft_ms DOUBLE PRECISION,
    status INTEGER NOT NULL,
    error_code TEXT,
    tags JSONB NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX spend_logs_started ON spend_logs (started_at);
CREATE INDEX spend_logs_token ON spend_logs (token, started_at);
CREATE INDEX spend_logs_user ON spend_logs (user_id, started_at);
CREATE INDEX spend_logs_team ON spend_logs (team_id, started_at);
CREATE INDEX spend_logs_org ON spend_logs (organization_id, started_at);
CREATE INDEX spend_logs_model ON spend_logs (model_group, started_at);

CREATE TABLE daily_spend (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    day DATE NOT NULL,
    requests BIGINT NOT NULL,
    successes BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    cost DOUBLE PRECISION NOT NULL,
    latency_ms_sum DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (kind, value, day)
);
CREATE INDEX daily_spend_day ON daily_spend (kind, day);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    before JSONB,
    after JSONB,
    request_id TEXT,
    client_ip TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_object ON audit_log (object_type, object_id);
CREATE INDEX audit_log_actor ON audit_log (actor);

CREATE TABLE responses (
    response_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    team_id TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    model TEXT,
    input_items TEXT NOT NULL,
    output TEXT NOT NULL,
    response TEXT NOT NULL
);
CREATE INDEX responses_owner ON responses (owner);
