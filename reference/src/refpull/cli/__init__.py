"""The refpull command: the explain, pull and serve sub-commands."""
