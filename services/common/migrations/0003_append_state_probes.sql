-- The append's read of its streams' heads, one index probe per stream.
--
-- 0002 read them as `stream_id = ANY(stream_ids) ... GROUP BY stream_id`. While the events
-- table has no statistics (a new database taking its first load, before autovacuum has
-- analysed it) the planner takes an array of 500 streams to match most of the table, and
-- each statement is planned for its parameters: a parallel scan of the whole table, 30 ms
-- a batch at 100,000 events and growing with it. A max() per stream is a backward probe of
-- the primary key whatever the planner knows: 2 ms for 500 streams at any size.
CREATE OR REPLACE FUNCTION event_store_append_state(lock_key bigint, event_ids text[], stream_ids text[])
RETURNS TABLE (seen_ids text[], head_streams text[], head_versions integer[], tail_position bigint,
               stamped_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    RETURN QUERY
    SELECT seen.ids, heads.streams, heads.versions, tail.position, now()
    FROM (SELECT coalesce(array_agg(e.event_id), '{}') AS ids
          FROM events e WHERE e.event_id = ANY(event_ids)) AS seen,
         (SELECT coalesce(array_agg(v.stream_id), '{}') AS streams,
                 coalesce(array_agg(v.version), '{}') AS versions
          FROM (SELECT s.stream_id,
                       (SELECT max(e.version) FROM events e WHERE e.stream_id = s.stream_id) AS version
                FROM unnest(stream_ids) AS s(stream_id)) AS v
          WHERE v.version IS NOT NULL) AS heads,
         (SELECT coalesce(max(e.global_position), 0) AS position FROM events e) AS tail;
END $$;
