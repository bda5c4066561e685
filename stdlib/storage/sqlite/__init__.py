"""The SQLite backend: one database file (or ``:memory:``) through sqlite-utils.

``store.Storage`` is the backend's face; the rest are its parts: the schema and its migrations
(``schema``), the file checks (``dbfile``), transactions (``transactions``), group commit
(``commits``), the cross-process writer lock (``writers``), what one step writes (``steps``),
the public dicts (``public_rows``) and the read-only view the CLI uses (``dbview``).
"""
