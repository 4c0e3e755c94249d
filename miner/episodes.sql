-- Episode detection: green G0, then one or more red and no green, then the
-- first green G1, per stream (host, workspace) in (ts, snapshot_id) order.
-- Runs over the `snapshots` view; miner/episodes.py explains the design.
--
-- Run by hand:  miner sql --data-dir DIR < miner/episodes.sql
WITH usable AS (
    -- A build result counts for a row only when it was computed on that very
    -- state and says green or red.  `base` rows record a change of the base
    -- revision, not a state of the working copy: they never count.  DISTINCT:
    -- a roll repeated after a crash may store a row twice; it counts once.
    SELECT DISTINCT host, workspace, snapshot_id, ts, build.status AS status
    FROM snapshots
    WHERE build.state_id = state_id
      AND build.status IN ('green', 'red')
      AND reason IS DISTINCT FROM 'base'
),
neighbours AS (
    -- One sort of the usable rows per stream gives every row its neighbours.
    SELECT
        host, workspace, snapshot_id, ts, status,
        row_number() OVER stream AS position,
        lag(status) OVER stream AS prev_status,
        lag(snapshot_id) OVER stream AS prev_id,
        lead(status) OVER stream AS next_status,
        lead(snapshot_id) OVER stream AS next_id,
        lead(ts) OVER stream AS next_ts
    FROM usable
    WINDOW stream AS (PARTITION BY host, workspace ORDER BY ts, snapshot_id)
),
edges AS (
    -- Only the edges of red runs matter: a red after a green opens a run
    -- (its previous row is G0), a red before a green closes one (its next
    -- row is G1).  A single red between two greens does both.
    SELECT
        *,
        prev_status = 'green' AS opens,
        next_status = 'green' AS closes
    FROM neighbours
    WHERE status = 'red' AND (prev_status = 'green' OR next_status = 'green')
),
paired AS (
    -- Each closing red takes the latest opening red of its stream: the
    -- runs alternate, so that is its own run's.  A run at the very start of
    -- a stream has no green before it, no opening red, and no episode.
    SELECT
        *,
        last_value(CASE WHEN opens THEN prev_id END IGNORE NULLS) OVER upto AS green_before_id,
        last_value(CASE WHEN opens THEN snapshot_id END IGNORE NULLS) OVER upto AS first_red_id,
        last_value(CASE WHEN opens THEN ts END IGNORE NULLS) OVER upto AS red_started_at,
        last_value(CASE WHEN opens THEN position END IGNORE NULLS) OVER upto AS first_position
    FROM edges
    WINDOW upto AS (
        PARTITION BY host, workspace ORDER BY position
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    )
)
SELECT
    host,
    workspace,
    green_before_id,
    first_red_id,
    snapshot_id AS red_id,          -- the last red: the state finally repaired
    next_id AS green_id,
    red_started_at,
    next_ts AS red_ended_at,
    CAST(position - first_position + 1 AS INTEGER) AS red_snapshots
FROM paired
WHERE closes AND first_red_id IS NOT NULL
ORDER BY host, workspace, red_ended_at, green_id
