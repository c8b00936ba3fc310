/**
 * SQLite schema, as numbered migrations. Append only: never edit a migration that has shipped; add
 * the next number. Applied in order inside one transaction each, recorded in schema_migrations.
 *
 * Times are INTEGER milliseconds since the epoch (the server's clock). Booleans are 0/1.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'jobs_tokens_logs_executors',
    sql: `
-- The hot table: one row per job, small and fixed-width apart from spec. Logs live elsewhere.
-- rank_key = queued_at - priority * rank_step_ms (store_settings), recomputed whenever the job is
-- (re)queued, so dequeue order is a plain index scan.
CREATE TABLE jobs (
  id                INTEGER PRIMARY KEY AUTOINCREMENT,
  queue             TEXT    NOT NULL,
  state             TEXT    NOT NULL
                    CHECK (state IN ('queued','processing','completed','errored','failed','canceled')),
  spec              TEXT    NOT NULL,
  repository_name   TEXT    NOT NULL DEFAULT '',
  commit_sha        TEXT    NOT NULL DEFAULT '',
  priority          INTEGER NOT NULL DEFAULT 0,
  max_attempts      INTEGER NOT NULL,
  attempts          INTEGER NOT NULL DEFAULT 0,
  num_failures      INTEGER NOT NULL DEFAULT 0,
  num_resets        INTEGER NOT NULL DEFAULT 0,
  cancel            INTEGER NOT NULL DEFAULT 0,
  worker_hostname   TEXT,
  failure_message   TEXT,
  timeout_ms        INTEGER NOT NULL,
  created_at        INTEGER NOT NULL,
  queued_at         INTEGER NOT NULL,
  process_after     INTEGER,
  started_at        INTEGER,
  last_heartbeat_at INTEGER,
  finished_at       INTEGER,
  rank_key          INTEGER NOT NULL
);
-- Dequeue: the queued rows of one queue in rank order.
CREATE INDEX jobs_queued_rank ON jobs (queue, rank_key, id) WHERE state = 'queued';
-- Resetter and deadline sweeps look only at processing rows.
CREATE INDEX jobs_processing ON jobs (last_heartbeat_at) WHERE state = 'processing';
-- User listing, newest first, filtered by state or queue.
CREATE INDEX jobs_state_id ON jobs (state, id);
CREATE INDEX jobs_queue_id ON jobs (queue, id);

-- One row; the priority step the rank_key column was computed with.
CREATE TABLE store_settings (
  id           INTEGER PRIMARY KEY CHECK (id = 1),
  rank_step_ms INTEGER NOT NULL
);
INSERT INTO store_settings (id, rank_step_ms) VALUES (1, 60000);

-- Live job tokens: only the SHA-256 (hex) is kept; at most one per job (the current attempt's).
CREATE TABLE job_tokens (
  token_hash      TEXT    PRIMARY KEY,
  job_id          INTEGER NOT NULL UNIQUE REFERENCES jobs (id) ON DELETE CASCADE,
  attempt         INTEGER NOT NULL,
  queue           TEXT    NOT NULL,
  repository_name TEXT    NOT NULL,
  executor_name   TEXT    NOT NULL,
  created_at      INTEGER NOT NULL
);

-- Log entries of each attempt; entry_id is 1-based within (job_id, attempt).
CREATE TABLE log_entries (
  job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt     INTEGER NOT NULL,
  entry_id    INTEGER NOT NULL,
  key         TEXT    NOT NULL,
  command     TEXT,
  start_time  TEXT    NOT NULL,
  exit_code   INTEGER,
  duration_ms INTEGER,
  out_length  INTEGER NOT NULL DEFAULT 0,
  truncated   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, attempt, entry_id)
);

-- Output is append-only rows; byte_offset is where the chunk starts within its entry.
CREATE TABLE log_chunks (
  job_id      INTEGER NOT NULL,
  attempt     INTEGER NOT NULL,
  entry_id    INTEGER NOT NULL,
  seq         INTEGER NOT NULL,
  byte_offset INTEGER NOT NULL,
  data        BLOB    NOT NULL,
  PRIMARY KEY (job_id, attempt, entry_id, seq),
  FOREIGN KEY (job_id, attempt, entry_id) REFERENCES log_entries (job_id, attempt, entry_id) ON DELETE CASCADE
);

CREATE TABLE executors (
  name             TEXT    PRIMARY KEY,
  hostname         TEXT    NOT NULL,
  queue_name       TEXT,
  queue_names      TEXT,
  os               TEXT    NOT NULL,
  architecture     TEXT    NOT NULL,
  docker_version   TEXT    NOT NULL,
  executor_version TEXT    NOT NULL,
  git_version      TEXT    NOT NULL,
  ignite_version   TEXT    NOT NULL,
  src_cli_version  TEXT    NOT NULL,
  first_seen_at    INTEGER NOT NULL,
  last_seen_at     INTEGER NOT NULL,
  metrics          TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX executors_last_seen ON executors (last_seen_at);
`,
  },
  {
    version: 2,
    name: 'job_claims',
    sql: `
-- Claim history, the PostgreSQL twin's table: one row per dequeue (job, attempt, executor), closed
-- with the outcome that ended the attempt (completed, errored, failed, deadline, stalled-reset,
-- stalled-failed) in the same transaction. (job_id, attempt) repeats only after a user retry,
-- which starts the attempt count again.
CREATE TABLE job_claims (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id        INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt       INTEGER NOT NULL,
  executor_name TEXT    NOT NULL,
  claimed_at    INTEGER NOT NULL,
  ended_at      INTEGER,
  outcome       TEXT
);
CREATE INDEX job_claims_job_attempt ON job_claims (job_id, attempt);
`,
  },
  {
    version: 3,
    name: 'api_tokens',
    sql: `
-- User-API tokens besides the bootstrap one: only the SHA-256 (hex) of the value is kept. Revoked
-- and expired rows stay (listed as such) until a token of the same name replaces them.
CREATE TABLE api_tokens (
  name         TEXT    PRIMARY KEY,
  scope        TEXT    NOT NULL CHECK (scope IN ('read','submit','admin')),
  token_hash   TEXT    NOT NULL UNIQUE,
  created_at   INTEGER NOT NULL,
  last_used_at INTEGER,
  expires_at   INTEGER,
  revoked_at   INTEGER
);
`,
  },
  {
    version: 4,
    name: 'log_entry_meta_bytes',
    sql: `
-- The bytes of an entry's key and command, counted with its output against the per-attempt log cap
-- (rows written before this migration count 0).
ALTER TABLE log_entries ADD COLUMN meta_bytes INTEGER NOT NULL DEFAULT 0;
`,
  },
  {
    version: 5,
    name: 'job_events',
    sql: `
-- The audit trail: who (the user-API actor, never a token) submitted, canceled or retried a job.
-- Written in the transaction of the change it records; read per job, oldest first.
CREATE TABLE job_events (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id  INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  at      INTEGER NOT NULL,
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
  created_at            INTEGER NOT NULL,
  last_sync_at          INTEGER,
  last_sync_duration_ms INTEGER,
  last_error            TEXT,
  size_bytes            INTEGER,
  default_branch        TEXT
);
`,
  },
  {
    version: 7,
    name: 'retention',
    sql: `
-- Retention (the pruner): finished jobs in the order they finished, and those whose output was not
-- dropped yet. The state lists are spelled as the pruner's queries spell them, so SQLite uses the
-- partial indexes.
ALTER TABLE jobs ADD COLUMN logs_pruned INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('completed', 'failed', 'canceled');
CREATE INDEX jobs_logs_unpruned ON jobs (finished_at)
  WHERE state IN ('completed', 'failed', 'canceled') AND logs_pruned = 0;
`,
  },
  {
    version: 8,
    name: 'job_claims_ended_only',
    sql: `
-- An open claim is now the jobs row itself (state processing: attempts, worker_hostname,
-- started_at), so a dequeue writes no claim row; the attempt's end writes its one row. Rebuilt
-- without AUTOINCREMENT (no sqlite_sequence write per claim; a new rowid is still above every
-- existing one, so id order stays claim order). Open rows left by the previous schema are dropped:
-- the jobs row now answers for them.
CREATE TABLE job_claims_ended (
  id            INTEGER PRIMARY KEY,
  job_id        INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt       INTEGER NOT NULL,
  executor_name TEXT    NOT NULL,
  claimed_at    INTEGER NOT NULL,
  ended_at      INTEGER NOT NULL,
  outcome       TEXT    NOT NULL
);
INSERT INTO job_claims_ended (id, job_id, attempt, executor_name, claimed_at, ended_at, outcome)
  SELECT id, job_id, attempt, executor_name, claimed_at, ended_at, outcome FROM job_claims
  WHERE outcome IS NOT NULL;
DROP TABLE job_claims;
ALTER TABLE job_claims_ended RENAME TO job_claims;
CREATE INDEX job_claims_job ON job_claims (job_id, id);
`,
  },
  {
    version: 9,
    name: 'executors_last_seen_unindexed',
    sql: `
-- last_seen_at moves on every heartbeat (touchExecutors) and its index moved with it: half the
-- cost of a touch. Its readers (the counts and lists of /metrics, the janitor) run seldom and read
-- most rows anyway, so they scan the table instead.
DROP INDEX executors_last_seen;
`,
  },
];
