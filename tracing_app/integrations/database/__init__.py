"""The database: a CLIENT span per query through ``connection.execute_wrapper``."""
