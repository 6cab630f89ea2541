-- Notifications raised by processes that route none themselves (`sluice submit`, `sluice
-- approve`, `sluice sweep`): kept here, masked as they are sent, until a daemon claims and
-- routes them to the notifiers and the tracker. Each row is claimed by one node only; claimed
-- rows are deleted after a week.
CREATE TABLE notification_outbox (
    id {{id}},
    event TEXT NOT NULL,
    project TEXT NOT NULL DEFAULT '',
    task_id BIGINT,
    title TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL DEFAULT '{}',
    raised_at BIGINT NOT NULL,
    raised_by TEXT NOT NULL,
    claimed_by TEXT,
    claimed_at BIGINT
);
CREATE INDEX notification_outbox_open ON notification_outbox (claimed_by, id);
