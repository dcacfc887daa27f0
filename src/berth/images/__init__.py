"""The image service: import, load, save, tag, rmi, prune, inspect, history.

Split by job: :mod:`.ingest` turns streams into stored layers and images, :mod:`.service`
names, lists and deletes them, :mod:`.archives` moves them in and out of tar archives,
:mod:`.views` shapes them for ``images``/``inspect``/``history``.
"""
