"""The PostgreSQL queue backend: one database shared by several receivers and workers."""
