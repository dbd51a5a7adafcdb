"""The PostgreSQL engine, on psycopg 3: an optional extra (``dash_database[postgres]``)."""
