-- Leases name the task they are held for (a merge lease is held across an edge, by whichever
-- job of the task is running) and the start ticks of the holding process, so a reused pid is
-- never taken for a live holder.
ALTER TABLE leases ADD COLUMN holder_task BIGINT;
ALTER TABLE leases ADD COLUMN holder_start_ticks BIGINT;
CREATE INDEX leases_holder_task ON leases (holder_task);

-- What the core sweepers (the job reaper, the reconciler) of each node did last, for
-- `sluice queue` and /api/queue, which read it from another process.
CREATE TABLE sweeper_status (
    node TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT '{}',
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (node, name)
);
