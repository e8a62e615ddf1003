"""The only code that talks to psycopg: schema, named queries, the Store."""
