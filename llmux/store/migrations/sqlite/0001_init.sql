-- Governance schema for the embedded SQLite store.
-- Datetimes are INTEGER microseconds since the Unix epoch (UTC); days are ISO 'YYYY-MM-DD'
-- text; `data` holds the full record as JSON, the other columns are indexes and the
-- store-maintained counters, which win over the JSON copy.

CREATE TABLE budgets (
    budget_id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL
);

CREATE TABLE organizations (
    organization_id TEXT PRIMARY KEY,
    organization_alias TEXT,
    budget_id TEXT,
    budget_duration TEXT,
    spend REAL NOT NULL DEFAULT 0,
    budget_reset_at INTEGER,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX organizations_reset ON organizations (budget_reset_at);

CREATE TABLE teams (
    team_id TEXT PRIMARY KEY,
    team_alias TEXT,
    organization_id TEXT,
    budget_id TEXT,
    blocked INTEGER NOT NULL DEFAULT 0,
    budget_duration TEXT,
    spend REAL NOT NULL DEFAULT 0,
    budget_reset_at INTEGER,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL
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
    spend REAL NOT NULL DEFAULT 0,
    budget_reset_at INTEGER,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX users_email ON users (user_email);
CREATE INDEX users_org ON users (organization_id);
CREATE INDEX users_reset ON users (budget_reset_at);

CREATE TABLE end_users (
    user_id TEXT PRIMARY KEY,
    alias TEXT,
    budget_id TEXT,
    blocked INTEGER NOT NULL DEFAULT 0,
    budget_duration TEXT,
    spend REAL NOT NULL DEFAULT 0,
    budget_reset_at INTEGER,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX end_users_reset ON end_users (budget_reset_at);

CREATE TABLE keys (
    token TEXT PRIMARY KEY,
    key_alias TEXT,
    user_id TEXT,
    team_id TEXT,
    organization_id TEXT,
    budget_id TEXT,
    blocked INTEGER NOT NULL DEFAULT 0,
    budget_duration TEXT,
    spend REAL NOT NULL DEFAULT 0,
    budget_reset_at INTEGER,
    last_used_at INTEGER,
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL
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
    spend REAL NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);

CREATE TABLE org_members (
    organization_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL,
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
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    latency_ms REAL NOT NULL,
    ttft_ms REAL,
    status INTEGER NOT NULL,
    error_code TEXT,
    tags TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER NOT NULL
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
    day TEXT NOT NULL,
    requests INTEGER NOT NULL,
    successes INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    latency_ms_sum REAL NOT NULL,
    PRIMARY KEY (kind, value, day)
);
CREATE INDEX daily_spend_day ON daily_spend (kind, day);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    before TEXT,
    after TEXT,
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
    created_at INTEGER NOT NULL,
    model TEXT,
    input_items TEXT NOT NULL,
    output TEXT NOT NULL,
    response TEXT NOT NULL
);
CREATE INDEX responses_owner ON responses (owner);
