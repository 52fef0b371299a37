-- A text description of everything the extension lookalike owns in the current database, one
-- line per fact, sorted, with no OIDs: two databases whose extensions are equivalent (an
-- upgraded one and a fresh install) print the same lines. Used by test/tap/090_upgrade.pl.
-- Covers: membership (pg_depend 'e'), functions (full definition, ACL), types, operators,
-- operator classes and families with their pg_amop/pg_amproc entries, access methods, casts,
-- tables and views (columns, defaults, constraints, indexes, triggers, policies, row-level
-- security, options, ACL), schemas, comments (objects and columns), initial privileges
-- (pg_init_privs) and the extension's own row (version, configuration tables).
WITH ext AS (
    SELECT oid, extname FROM pg_extension WHERE extname = 'lookalike'
), member AS (
    SELECT d.classid, d.objid, d.objsubid
    FROM pg_depend d, ext
    WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
), rel AS (  -- member tables, views, sequences and their indexes and toast-free parts
    SELECT c.oid FROM member m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
), facts(line) AS (
    -- membership
    SELECT 'member ' || pg_describe_object(classid, objid, objsubid) FROM member
    -- the extension's row
    UNION ALL
    SELECT format('extension version=%s relocatable=%s schema=%s config=%s conditions=%s',
                  e.extversion, e.extrelocatable, e.extnamespace::regnamespace,
                  (SELECT string_agg(c::regclass::text, ',' ORDER BY c::regclass::text) FROM unnest(e.extconfig) c),
                  array_to_string(e.extcondition, ','))
    FROM pg_extension e, ext WHERE e.oid = ext.oid
    -- functions and procedures
    UNION ALL
    SELECT format('function %s kind=%s acl=%s def=%s', p.oid::regprocedure, p.prokind, p.proacl,
                  CASE WHEN p.prokind = 'a' THEN
                      (SELECT format('aggregate sfunc=%s finalfunc=%s combine=%s stype=%s init=%s',
                                     a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggtranstype::regtype,
                                     a.agginitval)
                       FROM pg_aggregate a WHERE a.aggfnoid = p.oid)
                  ELSE pg_get_functiondef(p.oid) END)
    FROM member m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
    -- types
    UNION ALL
    SELECT format('type %s type=%s len=%s byval=%s align=%s storage=%s in=%s out=%s recv=%s send=%s '
                  'modin=%s modout=%s analyze=%s subscript=%s category=%s preferred=%s elem=%s array=%s '
                  'notnull=%s default=%s acl=%s',
                  t.oid::regtype, t.typtype, t.typlen, t.typbyval, t.typalign, t.typstorage,
                  t.typinput, t.typoutput, t.typreceive, t.typsend, t.typmodin, t.typmodout,
                  t.typanalyze, t.typsubscript, t.typcategory, t.typispreferred, t.typelem::regtype,
                  t.typarray::regtype, t.typnotnull, t.typdefault, t.typacl)
    FROM member m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
    -- operators
    UNION ALL
    SELECT format('operator %s code=%s commutator=%s negator=%s restrict=%s join=%s merges=%s hashes=%s',
                  o.oid::regoperator, o.oprcode::regprocedure, nullif(o.oprcom, 0)::regoperator,
                  nullif(o.oprnegate, 0)::regoperator, o.oprrest, o.oprjoin, o.oprcanmerge, o.oprcanhash)
    FROM member m JOIN pg_operator o ON m.classid = 'pg_operator'::regclass AND o.oid = m.objid
    -- operator classes
    UNION ALL
    SELECT format('opclass %s.%s using %s for %s default=%s keytype=%s family=%s',
                  oc.opcnamespace::regnamespace, oc.opcname, am.amname, oc.opcintype::regtype,
                  oc.opcdefault, nullif(oc.opckeytype, 0)::regtype, f.opfname)
    FROM member m JOIN pg_opclass oc ON m.classid = 'pg_opclass'::regclass AND oc.oid = m.objid
    JOIN pg_am am ON am.oid = oc.opcmethod JOIN pg_opfamily f ON f.oid = oc.opcfamily
    -- operator families (of member classes or members themselves) and their entries
    UNION ALL
    SELECT format('opfamily %s.%s using %s op %s strategy=%s purpose=%s left=%s right=%s sortfamily=%s',
                  f.opfnamespace::regnamespace, f.opfname, am.amname, ao.amopopr::regoperator,
                  ao.amopstrategy, ao.amoppurpose, ao.amoplefttype::regtype, ao.amoprighttype::regtype,
                  (SELECT opfname FROM pg_opfamily sf WHERE sf.oid = ao.amopsortfamily))
    FROM pg_opfamily f JOIN pg_am am ON am.oid = f.opfmethod JOIN pg_amop ao ON ao.amopfamily = f.oid
    WHERE f.oid IN (SELECT objid FROM member WHERE classid = 'pg_opfamily'::regclass
                    UNION SELECT oc.opcfamily FROM member m JOIN pg_opclass oc
                          ON m.classid = 'pg_opclass'::regclass AND oc.oid = m.objid)
    UNION ALL
    SELECT format('opfamily %s.%s using %s proc %s number=%s left=%s right=%s',
                  f.opfnamespace::regnamespace, f.opfname, am.amname, ap.amproc::regprocedure,
                  ap.amprocnum, ap.amproclefttype::regtype, ap.amprocrighttype::regtype)
    FROM pg_opfamily f JOIN pg_am am ON am.oid = f.opfmethod JOIN pg_amproc ap ON ap.amprocfamily = f.oid
    WHERE f.oid IN (SELECT objid FROM member WHERE classid = 'pg_opfamily'::regclass
                    UNION SELECT oc.opcfamily FROM member m JOIN pg_opclass oc
                          ON m.classid = 'pg_opclass'::regclass AND oc.oid = m.objid)
    -- access methods
    UNION ALL
    SELECT format('access method %s type=%s handler=%s', a.amname, a.amtype, a.amhandler::regprocedure)
    FROM member m JOIN pg_am a ON m.classid = 'pg_am'::regclass AND a.oid = m.objid
    -- casts
    UNION ALL
    SELECT format('cast %s -> %s function=%s context=%s method=%s', c.castsource::regtype,
                  c.casttarget::regtype, nullif(c.castfunc, 0)::regprocedure, c.castcontext, c.castmethod)
    FROM member m JOIN pg_cast c ON m.classid = 'pg_cast'::regclass AND c.oid = m.objid
    -- schemas
    UNION ALL
    SELECT format('schema %s acl=%s', n.nspname, n.nspacl)
    FROM member m JOIN pg_namespace n ON m.classid = 'pg_namespace'::regclass AND n.oid = m.objid
    -- relations: kind, options, security, ACL, view definition
    UNION ALL
    SELECT format('relation %s kind=%s persistence=%s options=%s rls=%s force_rls=%s acl=%s view=%s',
                  c.oid::regclass, c.relkind, c.relpersistence, c.reloptions, c.relrowsecurity,
                  c.relforcerowsecurity, c.relacl,
                  CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END)
    FROM rel JOIN pg_class c ON c.oid = rel.oid
    -- columns (in order: the position matters to SELECT * and COPY)
    UNION ALL
    SELECT format('column %s.%s position=%s type=%s notnull=%s default=%s identity=%s generated=%s '
                  'collation=%s acl=%s comment=%s',
                  a.attrelid::regclass, a.attname,
                  row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
                  format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
                  nullif(a.attcollation, 0)::regcollation, a.attacl, col_description(a.attrelid, a.attnum))
    FROM rel JOIN pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    -- constraints, indexes, triggers, policies, rules of member relations
    UNION ALL
    SELECT format('constraint %s.%s %s', co.conrelid::regclass, co.conname, pg_get_constraintdef(co.oid))
    FROM rel JOIN pg_constraint co ON co.conrelid = rel.oid
    UNION ALL
    SELECT format('index %s', pg_get_indexdef(i.indexrelid))
    FROM rel JOIN pg_index i ON i.indrelid = rel.oid
    UNION ALL
    SELECT format('trigger %s', pg_get_triggerdef(tg.oid))
    FROM rel JOIN pg_trigger tg ON tg.tgrelid = rel.oid
    UNION ALL
    SELECT format('policy %s.%s cmd=%s permissive=%s roles=%s using=%s check=%s', po.polrelid::regclass,
                  po.polname, po.polcmd, po.polpermissive,
                  (SELECT string_agg(CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END, ',' ORDER BY 1)
                   FROM unnest(po.polroles) r),
                  pg_get_expr(po.polqual, po.polrelid), pg_get_expr(po.polwithcheck, po.polrelid))
    FROM rel JOIN pg_policy po ON po.polrelid = rel.oid
    UNION ALL
    SELECT format('rule %s', pg_get_ruledef(ru.oid))
    FROM rel JOIN pg_rewrite ru ON ru.ev_class = rel.oid AND ru.rulename <> '_RETURN'
    -- comments on every member (column comments are on the column lines)
    UNION ALL
    SELECT format('comment on %s: %s', pg_describe_object(d.classoid, d.objoid, 0), d.description)
    FROM member m JOIN pg_description d ON d.classoid = m.classid AND d.objoid = m.objid AND d.objsubid = 0
    -- privileges the install script left (pg_init_privs; what pg_dump compares against)
    UNION ALL
    SELECT format('initial privileges %s: %s', pg_describe_object(ip.classoid, ip.objoid, ip.objsubid),
                  ip.initprivs)
    FROM pg_init_privs ip
    WHERE ip.privtype = 'e' AND (ip.classoid, ip.objoid) IN (SELECT classid, objid FROM member)
)
SELECT fact FROM (SELECT replace(line, E'\n', ' \n ') AS fact FROM facts) f
ORDER BY fact COLLATE "C";
