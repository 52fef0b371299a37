-- What the wrong neighbours of a pool validation variant have wrong (docs/training.md, "where
-- the errors are"). Run after demo/training_validation.sql has evaluated the variant; it reads
-- only the training pool (fashion_train.products' labels, through the group keys of the
-- validation's items view), never the evaluated catalogue.
--
--   psql "<demo dsn>" -v schema=train_val_h120 -v variant=b15_e3_g100_portrait_d384_p3_pc3_en3_s3 \
--        -f demo/training_errors.sql
--
-- Every held-out image (<schema>.items) of a group of 4 or more of them is a query (not the
-- evaluation's one sampled query per group and seed); its five nearest held-out images by cosine
-- distance (distractors included, itself excluded) are its neighbours. So the share of relevant
-- neighbours is a precision at 5 over every query, free of the noise of sampling the queries:
-- docs/training.md compares variants by it too (the fourth session of 2026-12-02).
-- Printed: the share of neighbours with every label right, with another article type, with the
-- same article type and another colour, with only the usage wrong, and the share of queries with
-- at least one neighbour with every label right (a hit rate at 5 over every query); then the most
-- frequent article-type and colour confusions (query's label -> neighbour's label). psql variables:
-- schema (default train_val_h120), variant (a column of <schema>.features; required), top
-- (rows per confusion list, default 10).
\set ON_ERROR_STOP on
\if :{?schema}
\else
\set schema train_val_h120
\endif
\if :{?top}
\else
\set top 10
\endif
SET client_min_messages = warning;

CREATE TEMP TABLE neighbours AS
WITH items AS (
    -- the evaluated images (the validation's items view) and their group's size among them
    SELECT i.id, count(*) OVER (PARTITION BY i.group_key) AS n,
           split_part(i.group_key, ' | ', 1) AS article_type,
           split_part(i.group_key, ' | ', 2) AS colour,
           split_part(i.group_key, ' | ', 3) AS usage,
           f.:"variant" AS e
      FROM :"schema".items i JOIN :"schema".features f USING (id)
     WHERE f.:"variant" IS NOT NULL)
SELECT q.id AS query, q.article_type AS q_type, q.colour AS q_colour, q.usage AS q_usage,
       nb.article_type, nb.colour, nb.usage
  FROM items q
 CROSS JOIN LATERAL (SELECT i.article_type, i.colour, i.usage
                       FROM items i
                      WHERE i.id <> q.id
                      ORDER BY i.e <=> q.e
                      LIMIT 5) AS nb
 WHERE q.n >= 4;

SELECT count(DISTINCT query) AS queries, count(*) AS neighbours,
       round(avg((article_type = q_type AND colour = q_colour AND usage = q_usage)::int), 4) AS relevant,
       round(avg((article_type <> q_type)::int), 4) AS other_type,
       round(avg((article_type = q_type AND colour <> q_colour)::int), 4) AS same_type_other_colour,
       round(avg((article_type = q_type AND colour <> q_colour AND usage = q_usage)::int), 4)
           AS only_colour,
       round(avg((article_type = q_type AND colour = q_colour AND usage <> q_usage)::int), 4)
           AS only_usage,
       (SELECT round(avg(hit::int), 4)
          FROM (SELECT bool_or(article_type = q_type AND colour = q_colour AND usage = q_usage) AS hit
                  FROM neighbours GROUP BY query) AS per_query) AS hit
  FROM neighbours;

SELECT q_type AS query_type, article_type AS neighbour_type, count(*) AS neighbours
  FROM neighbours WHERE article_type <> q_type
 GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT :top;

SELECT q_colour AS query_colour, colour AS neighbour_colour, count(*) AS neighbours
  FROM neighbours WHERE article_type = q_type AND colour <> q_colour
 GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT :top;
