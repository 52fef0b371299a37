-- One JSON document for scripts/demo_report.py: the summary beside the study, the per-seed
-- metrics, each method's outright wins in seed 1, and example queries of seed 1 (two per
-- category: each method winning, all failing) with their top-5 results (names, distances) and
-- the images as data URIs. Generic over the methods of fashion.retrieval_methods.
WITH q AS (
    SELECT query_id, jsonb_object_agg(method, relevant) AS rel
    FROM fashion.retrieval_results WHERE seed = 1 GROUP BY query_id),
methods AS (SELECT DISTINCT method FROM fashion.retrieval_results),
cats AS (
    SELECT m.method || ' wins' AS category, q.query_id
    FROM methods m JOIN q ON (q.rel ->> m.method)::int > (
        SELECT coalesce(max(e.value::int), -1) FROM jsonb_each_text(q.rel) e WHERE e.key <> m.method)
    WHERE (SELECT count(*) FROM methods) > 1
    UNION ALL
    SELECT 'all fail', q.query_id FROM q
    WHERE NOT EXISTS (SELECT 1 FROM jsonb_each_text(q.rel) e WHERE e.value::int > 0)),
picked AS (
    SELECT category, query_id FROM (
        SELECT c.*, row_number() OVER (PARTITION BY category ORDER BY md5(query_id::text)) AS rn
        FROM cats c) x
    WHERE rn <= 2),
img AS (
    SELECT p.id, p.product_display_name AS name, p.article_type, p.base_colour, p.usage,
           'data:image/' || CASE WHEN substring(p.image FROM 1 FOR 4) = '\x89504e47'::bytea THEN 'png'
                                 WHEN substring(p.image FROM 1 FOR 4) = '\x52494646'::bytea THEN 'webp'
                                 ELSE 'jpeg' END
           || ';base64,' || translate(encode(p.image, 'base64'), E'\n', '') AS src
    FROM fashion.products p
    WHERE p.id IN (SELECT query_id FROM picked)
       OR p.id IN (SELECT unnest(r.ranked_ids) FROM fashion.retrieval_results r
                   WHERE r.seed = 1 AND r.query_id IN (SELECT query_id FROM picked)))
SELECT json_build_object(
  -- per method: seed-1 queries it wins outright (more same-style results in its top 5 than every
  -- other method) and the seed's query count, for the report's headline
  'wins', (SELECT json_object_agg(m.method, (SELECT count(*) FROM cats c WHERE c.category = m.method || ' wins'))
           FROM methods m),
  'queries_seed1', (SELECT count(*) FROM q),
  'summary', (SELECT json_agg(t ORDER BY array_position(ARRAY['histogram', 'cnn', 'fused', 'learned', 'learned_fused'], t.method), t.method)
              FROM fashion.table1 t),
  'metrics', (SELECT json_agg(m ORDER BY m.method, m.seed) FROM fashion.retrieval_metrics m),
  'methods', (SELECT json_agg(json_build_object('method', method, 'description', description) ORDER BY method)
              FROM fashion.retrieval_methods),
  'examples', (
    SELECT json_agg(json_build_object(
             'category', p.category,
             'query', (SELECT row_to_json(i) FROM img i WHERE i.id = p.query_id),
             'group_key', (SELECT group_key FROM fashion.retrieval_members WHERE id = p.query_id),
             'results', (
               SELECT json_object_agg(r.method, (
                 SELECT json_agg(json_build_object('id', x.id, 'distance', round(x.d::numeric, 4),
                                                   'hit', mb.group_key = r.group_key,
                                                   'name', i.name, 'src', i.src) ORDER BY x.ord)
                 FROM unnest(r.ranked_ids, r.distances) WITH ORDINALITY AS x(id, d, ord)
                 JOIN fashion.retrieval_members mb ON mb.id = x.id
                 JOIN img i ON i.id = x.id))
               FROM fashion.retrieval_results r WHERE r.seed = 1 AND r.query_id = p.query_id))
           ORDER BY p.category, p.query_id)
    FROM picked p)
);
