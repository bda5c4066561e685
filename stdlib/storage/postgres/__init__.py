"""The PostgreSQL backend (``eddic[postgres]``): ``PostgresStorage`` in ``store``."""
