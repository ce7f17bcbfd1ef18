SET statement_timeout = '30000ms';
SELECT bdr.wait_slot_confirm_lsn(NULL, NULL);
RESET statement_timeout;
