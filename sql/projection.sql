-- Projections: lookalike.fit_projection(), project(), lookalike.drop_projection(), the
-- ownership rules of lookalike.projections and bad input. The points are chosen so that every
-- figure can be checked by hand: mean (10, 10), covariance diag(0.5, 2), eigenvalues 2 and 0.5
-- (mean 1.25), principal axis y.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lookalike;
RESET client_min_messages;
\set VERBOSITY sqlstate
CREATE TABLE proj_points (id int, e embedding);
INSERT INTO proj_points VALUES (1, '[11,10]'), (2, '[9,10]'), (3, '[10,12]'), (4, '[10,8]'), (5, NULL);

-- Full whitening (power 1/2, tiny epsilon): (10,12) -> (2/sqrt(2), 0) = (1.4142, 0).
SELECT name, method, dims_in, dims_out, epsilon, power, rows, variance_kept, owner = current_user AS mine
  FROM lookalike.fit_projection('p_full', 'SELECT e FROM proj_points', epsilon => 1e-9, power => 0.5);
SELECT id, (SELECT array_agg(round(v::numeric, 4)) FROM unnest(project(e, 'p_full')::real[]) v) AS y
  FROM proj_points ORDER BY id;
-- The defaults (epsilon 1, power 1/4): component 1 scaled by (2 + 1.25)^(-1/4) = 0.74478,
-- component 2 by (0.5 + 1.25)^(-1/4) = 0.86944.
SELECT name, epsilon, power FROM lookalike.fit_projection('p_mild', 'SELECT e FROM proj_points');
SELECT (SELECT array_agg(round(v::numeric, 4)) FROM unnest(project('[10,12]', 'p_mild')::real[]) v) AS y_3,
       (SELECT array_agg(round(v::numeric, 4)) FROM unnest(project('[11,10]', 'p_mild')::real[]) v) AS y_1;
-- One component (a PCA reduction): keeps 2 of 2.5 of the variance.
SELECT dims_out, variance_kept FROM lookalike.fit_projection('p_one', 'SELECT e FROM proj_points', power => 0, components => 1);
SELECT project('[10,13]', 'p_one');
-- Refitting replaces it (next statement sees the new one).
SELECT dims_out FROM lookalike.fit_projection('p_one', 'SELECT e FROM proj_points', power => 0);
SELECT project('[10,13]', 'p_one');
-- project() is STRICT and works on a whole table in one statement (read once).
SELECT count(*), count(project(e, 'p_full')) FROM proj_points;

-- ---- bad input ---------------------------------------------------------------------------
SELECT project('[1,2]', 'no_such_projection');                        -- 42704
SELECT project('[1,2,3]', 'p_full');                                  -- 22000 dimension
SELECT lookalike.fit_projection('bad', 'SELECT id, e FROM proj_points');  -- 42804 two columns
SELECT lookalike.fit_projection('bad', 'SELECT id FROM proj_points');     -- 42804 not embedding
SELECT lookalike.fit_projection('bad', 'SELECT e FROM proj_points WHERE false');  -- 22023 no rows
SELECT lookalike.fit_projection('bad', 'SELECT e FROM proj_points WHERE id = 1'); -- 22023 one row
SELECT lookalike.fit_projection('bad', $$SELECT '[1,1]'::embedding FROM generate_series(1, 3)$$); -- 22023 no variance
SELECT lookalike.fit_projection('bad', $$SELECT '[1,2]'::embedding UNION ALL SELECT '[1,2,3]'$$);  -- 22000
SELECT lookalike.fit_projection('bad', 'SELECT e FROM proj_points', power => 2);       -- 22023
SELECT lookalike.fit_projection('bad', 'SELECT e FROM proj_points', epsilon => 0);     -- 22023
SELECT lookalike.fit_projection('bad', 'SELECT e FROM proj_points', components => 3);  -- 22023
SELECT lookalike.fit_projection('bad', 'SELECT e FROM proj_points', components => 0);  -- 22023
SELECT lookalike.fit_projection('', 'SELECT e FROM proj_points');                      -- 22023
SELECT lookalike.fit_projection('bad', 'SELEC e');                                     -- 42601
SELECT lookalike.fit_projection('bad', NULL);                                          -- 22023
SELECT count(*) FROM lookalike.projections WHERE name = 'bad';
-- damaged stored data is reported, never read past its end
UPDATE lookalike.projections SET data = substring(data FROM 1 FOR 20) WHERE name = 'p_mild';
SELECT project('[10,12]', 'p_mild');                                  -- XX001
SELECT project('[10,12]', 'p_full');                                  -- still fine

-- ---- ownership: every role reads all projections, changes only its own -------------------
CREATE ROLE regress_lookalike_proj;
GRANT SELECT ON proj_points TO regress_lookalike_proj;
SET ROLE regress_lookalike_proj;
SELECT project('[10,12]', 'p_one');                                   -- may use others'
SELECT lookalike.fit_projection('p_full', 'SELECT e FROM proj_points');  -- 42501 not its own
UPDATE lookalike.projections SET power = 0 WHERE name = 'p_full';    -- 0 rows (policy)
SELECT lookalike.drop_projection('p_full');                          -- 42704 not its own
SELECT name, dims_out FROM lookalike.fit_projection('p_user', 'SELECT e FROM proj_points', components => 1);
SELECT lookalike.drop_projection('p_user');
RESET ROLE;
SELECT name, owner = current_user AS mine, power FROM lookalike.projections ORDER BY name;
SELECT lookalike.drop_projection('p_full');
SELECT lookalike.drop_projection('p_full');                          -- 42704
SELECT project('[10,12]', 'p_full');                                 -- 42704
DELETE FROM lookalike.projections;
DROP TABLE proj_points;
REVOKE ALL ON SCHEMA public FROM regress_lookalike_proj;
DROP ROLE regress_lookalike_proj;
