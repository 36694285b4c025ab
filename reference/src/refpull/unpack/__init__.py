"""Unpacking: applying layer tars to snapshot directories, confined and verified."""
