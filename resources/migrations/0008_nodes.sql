-- Several nodes on one store (docs/adr/0015-several-nodes.md).
--
-- claim_token: the fencing token of a job's current claim. Every claim and every takeover
-- adds one, and every write made for a claim (completion, failure, the task's head, the
-- agent run) requires the token it was given: a node that was paused and comes back after
-- its job was taken over writes nothing.
ALTER TABLE jobs ADD COLUMN claim_token BIGINT NOT NULL DEFAULT 0;

-- Where an agent runs: the machine (a pid means something only there) and its working copy
-- (a survivor on the same machine adopts it, and takes its work, from there).
ALTER TABLE agent_runs ADD COLUMN host TEXT NOT NULL DEFAULT '';
ALTER TABLE agent_runs ADD COLUMN worktree TEXT NOT NULL DEFAULT '';

-- The token of a lease: the generation of its holder's node claim when it was taken.
ALTER TABLE leases ADD COLUMN fence_token BIGINT NOT NULL DEFAULT 0;

-- The claim of a node name by one running daemon: the machine, the instance (a random id per
-- process), a generation bumped by every new claim and by every takeover, and how the claim
-- ended: stopped_at for an orderly stop, taken_over_by/_at when survivors took its work.
-- Writes made on behalf of a node require its instance to still hold the name.
ALTER TABLE nodes ADD COLUMN host TEXT NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN instance TEXT NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN stopped_at BIGINT;
ALTER TABLE nodes ADD COLUMN taken_over_by TEXT NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN taken_over_at BIGINT;

-- What a task's last completed job left for gates in its working copy's .sluice/ directory
-- (a review, a deploy record), taken with the job's work: a gate judges it on whichever node
-- evaluates the task, not only where the job ran.
-- tasks.stage_files_job names the job whose files stage_files holds (0: none recorded yet, as
-- for a task whose jobs ran before this version: its working copy's files are left alone).
ALTER TABLE tasks ADD COLUMN stage_files_job BIGINT NOT NULL DEFAULT 0;
CREATE TABLE stage_files (
    task_id BIGINT NOT NULL REFERENCES tasks (id),
    path TEXT NOT NULL,
    job_id BIGINT NOT NULL,
    content {{bytes}} NOT NULL,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (task_id, path)
);
