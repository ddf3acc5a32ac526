"""Persistence: the file on disk, out-of-band merges and the history store."""
