-- What an append needs to know, read under the append lock, in one round trip.
--
-- A statement's snapshot is taken when the statement starts, so a lock and a read in one
-- plain statement would read a snapshot from before the lock was granted, missing an append
-- committed while this one waited. As two statements, the lock and the read would cost two
-- round trips per batch. A VOLATILE function takes a fresh snapshot for each query it
-- runs: the query below starts after the lock is granted and sees every append committed
-- before it. pg_advisory_xact_lock is re-entrant, so a caller that holds the lock already
-- may call this too.
CREATE FUNCTION event_store_append_state(lock_key bigint, event_ids text[], stream_ids text[])
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
          FROM (SELECT e.stream_id, max(e.version) AS version FROM events e
                WHERE e.stream_id = ANY(stream_ids) GROUP BY e.stream_id) AS v) AS heads,
         (SELECT coalesce(max(e.global_position), 0) AS position FROM events e) AS tail;
END $$;
