-- Webhook deliveries are answered once recorded and handled afterwards: processed_at (see
-- 0001) is now set when a node takes a delivery to handle it, and a daemon handles the
-- deliveries nobody took (the process that answered them ended first). Deliveries recorded
-- before this version were handled before they were answered: they count as handled.
UPDATE events SET processed_at = received_at WHERE processed_at IS NULL;

-- Comments and states Sluice writes to a tracker, kept until the tracker took them: a write
-- that failed (the tracker down, a 500) is tried again with back-off instead of being lost. A
-- state write supersedes the older state writes of the same issue that did not go through
-- yet (only the newest state matters). write_key makes a repeated comment idempotent where
-- the tracker supports it. task_version and stage tell the reconciler which visit of a stage
-- a state write belongs to. Done rows are deleted after a week.
CREATE TABLE tracker_writes (
    id {{id}},
    project TEXT NOT NULL,
    task_id BIGINT NOT NULL,
    task_version BIGINT NOT NULL DEFAULT 0,
    tracker_ref TEXT NOT NULL,
    action TEXT NOT NULL,
    value TEXT NOT NULL,
    event TEXT NOT NULL DEFAULT '',
    stage TEXT NOT NULL DEFAULT '',
    write_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    claimed_by TEXT,
    claimed_until BIGINT,
    done_at BIGINT,
    outcome TEXT NOT NULL DEFAULT ''
);
CREATE INDEX tracker_writes_open ON tracker_writes (done_at, next_at);
CREATE INDEX tracker_writes_task ON tracker_writes (task_id, action, id);
