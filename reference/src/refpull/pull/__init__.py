"""The pull pipeline: parse, resolve, fetch, convert, unpack; the one place that runs requests."""
