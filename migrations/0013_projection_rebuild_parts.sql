-- A rebuild's bulk phase cuts the projection's streams into ranges of stream ids
-- ("parts") that several processes fold side by side. Each part records how far it got,
-- in the same transaction as each chunk it adds to the shadow table, so a killed rebuild
-- resumes every part where it stopped. (`projection_rebuilds.events` stays the total.)
CREATE TABLE projection_rebuild_parts (
    projection   text    NOT NULL REFERENCES projection_rebuilds ON DELETE CASCADE,
    part         integer NOT NULL,
    low          text,   -- the part's streams: from this stream id (NULL: the first) ...
    high         text,   -- ... up to, not including, this one (NULL: to the last)
    after_stream text,   -- every stream of the part up to this one is in the shadow
    events       bigint  NOT NULL DEFAULT 0,
    done         boolean NOT NULL DEFAULT false,
    PRIMARY KEY (projection, part)
);

-- a rebuild interrupted before parts existed continues as one part
INSERT INTO projection_rebuild_parts (projection, part, after_stream, events)
SELECT projection, 0, after_stream, events FROM projection_rebuilds WHERE phase = 'streams';

ALTER TABLE projection_rebuilds DROP COLUMN after_stream;
