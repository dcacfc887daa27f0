"""Persistent state: SQLite metadata, content-addressed blobs, unpacked layers, locks.

Nothing here knows about containers, registries or the CLI; it keeps bytes and rows and
guarantees that what is visible is complete (see each module's opening comment).
"""
