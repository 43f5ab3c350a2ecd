-- The demo database behind the sqlite_demo module: a small job queue and an order book.
-- probe_exporter builds it on first use into its cache directory, then opens it read-only.
CREATE TABLE queues (name TEXT PRIMARY KEY, max_workers INTEGER NOT NULL);
INSERT INTO queues VALUES ('mail', 4), ('reports', 2), ('billing', 1), ('archive', 1);

CREATE TABLE jobs (
  id INTEGER PRIMARY KEY,
  queue TEXT NOT NULL REFERENCES queues(name),
  state TEXT NOT NULL CHECK (state IN ('ready', 'running', 'failed', 'done')),
  attempts INTEGER NOT NULL DEFAULT 0,
  runtime_seconds REAL            -- NULL until the job has run
);
INSERT INTO jobs (queue, state, attempts, runtime_seconds) VALUES
  ('mail', 'ready', 0, NULL), ('mail', 'ready', 0, NULL), ('mail', 'ready', 1, NULL),
  ('mail', 'running', 1, 2.5), ('mail', 'done', 1, 0.8), ('mail', 'done', 2, 1.1),
  ('reports', 'running', 1, 42.0), ('reports', 'failed', 3, 120.0), ('reports', 'done', 1, 37.5),
  ('billing', 'ready', 0, NULL), ('billing', 'done', 1, 3.25);
-- 'archive' has no jobs: its runtime aggregate is NULL, so the demo shows that NULL gives no sample.

CREATE TABLE orders (id INTEGER PRIMARY KEY, region TEXT, amount_cents INTEGER NOT NULL);
INSERT INTO orders (region, amount_cents) VALUES
  ('eu', 1250), ('eu', 990), ('us', 4200), ('us', 150), ('us', 999), (NULL, 500);
-- The NULL region becomes region="" (a NULL key label is the empty string).

CREATE TABLE build_info (version TEXT, schema_version INTEGER);
INSERT INTO build_info VALUES ('1.4.2', 7);
