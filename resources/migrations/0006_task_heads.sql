-- Where a task's work stands outside its working copy (docs/adr/0013-task-working-copies.md):
-- head_sha (since version 1) is the commit the host took from the task's working copy after
-- its last job; pushed_sha is the commit the host last pushed to the forge's task branch
-- ('' when nothing was pushed, and always '' for a repository that is its own forge).
ALTER TABLE tasks ADD COLUMN pushed_sha TEXT NOT NULL DEFAULT '';
