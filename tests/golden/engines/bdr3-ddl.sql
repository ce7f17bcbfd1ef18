SELECT bdr.replicate_ddl_command('CREATE TABLE public.items (id bigint PRIMARY KEY, v text)');
