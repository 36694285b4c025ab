"""Go-compatible parsing and encoding: what the runtimes inherit from Go and its libraries."""
