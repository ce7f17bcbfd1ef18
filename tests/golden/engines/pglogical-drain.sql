SET statement_timeout = '30000ms';
-- Without a slot pglogical.wait_slot_confirm_lsn would wait forever: skip it then.
SELECT pglogical.wait_slot_confirm_lsn(NULL, NULL)
 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots
                WHERE slot_type = 'logical' AND database = current_database());
RESET statement_timeout;
