SELECT bdr.alter_sequence_set_kind('"public"."items_id_seq"'::regclass, 'timeshard')
 WHERE NOT EXISTS (SELECT 1 FROM bdr.sequences WHERE seqid = '"public"."items_id_seq"'::regclass AND seqkind = 'timeshard');
