-- Concurrency limits are per node (worker.concurrency, jobs.concurrency): the claim counts
-- the running jobs of one node, in total and per project, from one partial index. The
-- store-wide (project, status) index is no longer read by anything, and every index a job's
-- status change has to update costs each claim and completion.
DROP INDEX jobs_running_by_node;
DROP INDEX jobs_project_status;
-- The claim's counts, the reaper and startup recovery: running jobs of one node.
CREATE INDEX jobs_running_by_node ON jobs (claimed_by, project) WHERE status = 'running';
