"""The data-lake sink: output topics appended to Delta Lake tables exactly once, queried with DuckDB."""
