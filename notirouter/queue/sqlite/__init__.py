"""The embedded queue backend: one SQLite file, one writer thread, group commit."""
