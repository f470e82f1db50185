-- A job's (project_id, queue) still names a queue of its own project, enforced by the
-- database, but checked once per statement instead of once per row. The foreign key's
-- per-row check (a lookup of the queue and a KEY SHARE lock, row after row) was about
-- 2 µs of PostgreSQL CPU for every enqueued job, a tenth of the enqueue statement's
-- (docs/benchmarks.md). These triggers keep what the key guaranteed: every inserted job
-- references an existing queue of its project, which stays locked against deletion until
-- the inserting transaction ends; a job's project and queue never change; deleting a
-- queue deletes its jobs. test/regression/queue-reference.test.ts.
ALTER TABLE jobs DROP CONSTRAINT jobs_project_id_queue_fkey;

CREATE FUNCTION jobs_queue_reference() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Lock first, as the key did: a queue deleted meanwhile is then missing from the check.
  PERFORM 1 FROM queues q
  WHERE (q.project_id, q.name) IN (SELECT n.project_id, n.queue FROM new_jobs n)
  FOR KEY SHARE OF q;
  IF EXISTS (SELECT 1 FROM new_jobs n
             WHERE NOT EXISTS (SELECT 1 FROM queues q WHERE q.project_id = n.project_id AND q.name = n.queue)) THEN
    RAISE foreign_key_violation USING
      MESSAGE = 'a job must reference a queue of its own project',
      TABLE = 'jobs', CONSTRAINT = 'jobs_queue_reference';
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER jobs_queue_reference AFTER INSERT ON jobs
  REFERENCING NEW TABLE AS new_jobs
  FOR EACH STATEMENT EXECUTE FUNCTION jobs_queue_reference();

CREATE FUNCTION jobs_queue_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE integrity_constraint_violation USING
    MESSAGE = CASE TG_TABLE_NAME WHEN 'queues' THEN 'a queue''s project and name never change'
                                 ELSE 'a job''s project and queue never change' END,
    TABLE = TG_TABLE_NAME, CONSTRAINT = 'jobs_queue_reference';
END $$;

-- Only statements that set these columns fire it: the engine's updates never do.
CREATE TRIGGER jobs_queue_fixed BEFORE UPDATE OF project_id, queue ON jobs
  FOR EACH ROW WHEN (OLD.project_id IS DISTINCT FROM NEW.project_id OR OLD.queue IS DISTINCT FROM NEW.queue)
  EXECUTE FUNCTION jobs_queue_fixed();

CREATE TRIGGER queues_key_fixed BEFORE UPDATE OF project_id, name ON queues
  FOR EACH ROW WHEN (OLD.project_id IS DISTINCT FROM NEW.project_id OR OLD.name IS DISTINCT FROM NEW.name)
  EXECUTE FUNCTION jobs_queue_fixed();

CREATE FUNCTION queues_delete_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM jobs WHERE project_id = OLD.project_id AND queue = OLD.name;
  RETURN NULL;
END $$;

-- Row level, so it also runs for queues deleted by their project's cascade.
CREATE TRIGGER queues_delete_jobs AFTER DELETE ON queues
  FOR EACH ROW EXECUTE FUNCTION queues_delete_jobs();
