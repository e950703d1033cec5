-- Looking a case up by its reference (services/recovery/domain/reference.py): the reference
-- spells a 55-bit key derived from the case id, the first 55 bits of SHA-256 over its UTF-8
-- bytes. The index is on that key, computed here from the id, so every case already in
-- rm_cases is found without a rebuild; a test checks this function against the Python one.
-- Not unique: should two cases ever share a key, a lookup finds both and says so.
CREATE FUNCTION rm_case_reference_key(case_id text) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT ('x' || left(encode(sha256(convert_to(case_id, 'UTF8')), 'hex'), 14))::bit(56)::bigint >> 1 $$;

CREATE INDEX rm_cases_reference_idx ON rm_cases (rm_case_reference_key(case_id));
