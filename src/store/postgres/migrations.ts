/**
 * PostgreSQL schema, as numbered migrations. Append only: never edit a migration that has shipped; add
 * the next number. Applied under an advisory lock, one transaction each, recorded in
 * schema_migrations, so several server replicas may start at once.
 *
 * Times are BIGINT milliseconds since the epoch, as in the SQLite twin; they come from the database's
 * clock, or from the caller's in the store's 'caller' clock mode (see postgres-store.ts).
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'jobs_tokens_logs_executors',
    sql: `
-- The hot table: one small row per job; logs live in their own tables.
-- rank_key = queued_at - priority * rank_step_ms (store_settings), set whenever the job is queued.
CREATE TABLE jobs (
  id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  queue             TEXT    NOT NULL,
  state             TEXT    NOT NULL
                    CHECK (state IN ('queued','processing','completed','errored','failed','canceled')),
  spec              JSON    NOT NULL,
  repository_name   TEXT    NOT NULL DEFAULT '',
  commit_sha        TEXT    NOT NULL DEFAULT '',
  priority          INTEGER NOT NULL DEFAULT 0,
  max_attempts      INTEGER NOT NULL,
  attempts          INTEGER NOT NULL DEFAULT 0,
  num_failures      INTEGER NOT NULL DEFAULT 0,
  num_resets        INTEGER NOT NULL DEFAULT 0,
  cancel            BOOLEAN NOT NULL DEFAULT FALSE,
  worker_hostname   TEXT,
  failure_message   TEXT,
  timeout_ms        BIGINT  NOT NULL,
  created_at        BIGINT  NOT NULL,
  queued_at         BIGINT  NOT NULL,
  process_after     BIGINT,
  started_at        BIGINT,
  last_heartbeat_at BIGINT,
  finished_at       BIGINT,
  rank_key          BIGINT  NOT NULL
);
-- Dequeue scans only queued rows of one queue, in rank order (FOR UPDATE SKIP LOCKED).
CREATE INDEX jobs_queued_rank ON jobs (queue, rank_key, id) WHERE state = 'queued';
-- Resetter and deadline sweeps look only at processing rows.
CREATE INDEX jobs_processing ON jobs (last_heartbeat_at) WHERE state = 'processing';
CREATE INDEX jobs_state_id ON jobs (state, id);
CREATE INDEX jobs_queue_id ON jobs (queue, id);

CREATE TABLE store_settings (
  id           INTEGER PRIMARY KEY CHECK (id = 1),
  rank_step_ms BIGINT  NOT NULL
);
INSERT INTO store_settings (id, rank_step_ms) VALUES (1, 60000);

-- Live job tokens: SHA-256 hex only; at most one per job (the current attempt's).
CREATE TABLE job_tokens (
  token_hash      TEXT    PRIMARY KEY,
  job_id          BIGINT  NOT NULL UNIQUE REFERENCES jobs (id) ON DELETE CASCADE,
  attempt         INTEGER NOT NULL,
  queue           TEXT    NOT NULL,
  repository_name TEXT    NOT NULL,
  executor_name   TEXT    NOT NULL,
  created_at      BIGINT  NOT NULL
);

CREATE TABLE log_entries (
  job_id      BIGINT  NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt     INTEGER NOT NULL,
  entry_id    INTEGER NOT NULL,
  key         TEXT    NOT NULL,
  command     TEXT[],
  start_time  TEXT    NOT NULL,
  exit_code   INTEGER,
  duration_ms BIGINT,
  out_length  BIGINT  NOT NULL DEFAULT 0,
  truncated   BOOLEAN NOT NULL DEFAULT FALSE,
  PRIMARY KEY (job_id, attempt, entry_id)
);

-- Output is append-only rows; byte_offset is where the chunk starts within its entry.
CREATE TABLE log_chunks (
  job_id      BIGINT  NOT NULL,
  attempt     INTEGER NOT NULL,
  entry_id    INTEGER NOT NULL,
  seq         INTEGER NOT NULL,
  byte_offset BIGINT  NOT NULL,
  data        BYTEA   NOT NULL,
  PRIMARY KEY (job_id, attempt, entry_id, seq),
  FOREIGN KEY (job_id, attempt, entry_id) REFERENCES log_entries (job_id, attempt, entry_id) ON DELETE CASCADE
);

CREATE TABLE executors (
  name             TEXT    PRIMARY KEY,
  hostname         TEXT    NOT NULL,
  queue_name       TEXT,
  queue_names      TEXT[],
  os               TEXT    NOT NULL,
  architecture     TEXT    NOT NULL,
  docker_version   TEXT    NOT NULL,
  executor_version TEXT    NOT NULL,
  git_version      TEXT    NOT NULL,
  ignite_version   TEXT    NOT NULL,
  src_cli_version  TEXT    NOT NULL,
  first_seen_at    BIGINT  NOT NULL,
  last_seen_at     BIGINT  NOT NULL,
  metrics          TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX executors_last_seen ON executors (last_seen_at);
`,
  },
  {
    version: 2,
    name: 'job_claims',
    sql: `
-- Claim history, out of the hot table: one row per dequeue (job, attempt, executor), closed with the
-- outcome that ended the attempt (completed, errored, failed, deadline, stalled-reset,
-- stalled-failed). Evidence for "each attempt is handed out once": (job_id, attempt) repeats only
-- after a user retry, which starts the attempt count again.
CREATE TABLE job_claims (
  id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id        BIGINT  NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt       INTEGER NOT NULL,
  executor_name TEXT    NOT NULL,
  claimed_at    BIGINT  NOT NULL,
  ended_at      BIGINT,
  outcome       TEXT
);
CREATE INDEX job_claims_job_attempt ON job_claims (job_id, attempt);
-- The hot table is updated several times per job: vacuum it after 1% of its rows changed instead of
-- the default 20%, so dead row versions do not pile up in the queued-jobs index under load.
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02,
  autovacuum_vacuum_cost_delay = 1);
ALTER TABLE job_tokens SET (autovacuum_vacuum_scale_factor = 0.01);
`,
  },
  {
    version: 3,
    name: 'api_tokens',
    sql: `
-- User-API tokens besides the bootstrap one: only the SHA-256 (hex) of the value is kept. Every
-- request with such a token reads its row (no cache), so a revoke is seen by every replica at once.
-- Revoked and expired rows stay (listed as such) until a token of the same name replaces them.
CREATE TABLE api_tokens (
  name         TEXT    PRIMARY KEY,
  scope        TEXT    NOT NULL CHECK (scope IN ('read','submit','admin')),
  token_hash   TEXT    NOT NULL UNIQUE,
  created_at   BIGINT  NOT NULL,
  last_used_at BIGINT,
  expires_at   BIGINT,
  revoked_at   BIGINT
);
`,
  },
  {
    version: 4,
    name: 'log_entry_meta_bytes',
    sql: `
-- The bytes of an entry's key and command, counted with its output against the per-attempt log cap
-- (rows written before this migration count 0).
ALTER TABLE log_entries ADD COLUMN meta_bytes BIGINT NOT NULL DEFAULT 0;
`,
  },
  {
    version: 5,
    name: 'job_events',
    sql: `
-- The audit trail: who (the user-API actor, never a token) submitted, canceled or retried a job.
-- Written in the statement of the change it records; read per job, oldest first.
CREATE TABLE job_events (
  id      BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id  BIGINT  NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  at      BIGINT  NOT NULL,
  actor   TEXT    NOT NULL,
  action  TEXT    NOT NULL CHECK (action IN ('submitted','canceled','retried'))
);
CREATE INDEX job_events_job ON job_events (job_id, id);
`,
  },
  {
    version: 6,
    name: 'repositories',
    sql: `
-- Mirrored repositories: registered by name and URL; the server keeps a bare mirror of each in the
-- repositories directory. credential holds where the secret comes from (JSON of environment variable
-- or file names), never a secret. The sync columns describe the last fetch.
CREATE TABLE repositories (
  name                  TEXT    PRIMARY KEY,
  url                   TEXT    NOT NULL,
  credential            TEXT,
  source                TEXT    NOT NULL CHECK (source IN ('api','file')),
  state                 TEXT    NOT NULL CHECK (state IN ('new','syncing','ready','failed')),
  created_at            BIGINT NOT NULL,
  last_sync_at          BIGINT,
  last_sync_duration_ms BIGINT,
  last_error            TEXT,
  size_bytes            BIGINT,
  default_branch        TEXT
);
`,
  },
  {
    version: 7,
    name: 'retention',
    sql: `
-- Retention (the pruner): finished jobs in the order they finished, and those whose output was not
-- dropped yet.
ALTER TABLE jobs ADD COLUMN logs_pruned BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('completed', 'failed', 'canceled');
CREATE INDEX jobs_logs_unpruned ON jobs (finished_at)
  WHERE state IN ('completed', 'failed', 'canceled') AND NOT logs_pruned;
-- The pruner deletes output in batches: vacuum the log tables after 5% of their rows went (default
-- 20%), so the freed space is reused by new output instead of growing the files.
ALTER TABLE log_chunks SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE log_entries SET (autovacuum_vacuum_scale_factor = 0.05);
`,
  },
  {
    version: 8,
    name: 'executors_last_seen_unindexed',
    sql: `
-- last_seen_at moves on every heartbeat (touchExecutors); with it indexed no touch could be a
-- heap-only (HOT) update, so each wrote both indexes. Its readers (the counts and lists of
-- /metrics, the janitor) run seldom and read most rows anyway, so they scan the table instead.
-- Pages kept a fifth empty leave the new version room beside the old: of 36,000 touches of 10,000
-- rows, none were heap-only with the index, 91 % without it, 98 % with this fill factor too.
DROP INDEX executors_last_seen;
ALTER TABLE executors SET (fillfactor = 80);
`,
  },
];
