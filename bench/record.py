"""The result record's schema version, shared by the writer (runner) and the readers (report)."""

#: bump when a record's fields change meaning; the report skips records of other schemas, saying which
RECORD_SCHEMA = 3  # 3: records come from work units (units, scoring, cost in gradient evaluations)
