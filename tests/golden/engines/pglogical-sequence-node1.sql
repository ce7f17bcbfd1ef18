DO $pb$
DECLARE
  s record;
  floor_value bigint;
  restart bigint;
BEGIN
  SELECT increment_by, start_value, last_value INTO s FROM pg_catalog.pg_sequences
   WHERE schemaname = 'public' AND sequencename = 'items_id_seq';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'sequence % does not exist', '"public"."items_id_seq"';
  END IF;
  IF s.increment_by = 100 AND s.start_value % 100 = 2 THEN
    RETURN; -- already this node's offset/step
  END IF;
  floor_value := greatest(0, coalesce(s.last_value, 0));
  restart := (floor_value / 100 + 1) * 100 + 2;
  EXECUTE format('ALTER SEQUENCE %s INCREMENT BY %s START WITH %s RESTART WITH %s',
                 '"public"."items_id_seq"', 100, restart, restart);
END
$pb$;
