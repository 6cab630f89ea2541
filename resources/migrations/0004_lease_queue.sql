-- Tasks waiting for a lease another task holds, in the order they first asked: a free lease
-- goes to the task that has waited longest and still asks (first come, first served), not to
-- whichever looks first. A waiter keeps its place while it asks again within the TTL it asks
-- with; its row goes when it takes the lease, when its task is rolled back or blocked, or
-- when it stops asking.
CREATE TABLE lease_queue (
    resource TEXT NOT NULL,
    holder_task BIGINT NOT NULL,
    first_asked BIGINT NOT NULL,
    last_asked BIGINT NOT NULL,
    PRIMARY KEY (resource, holder_task)
);
