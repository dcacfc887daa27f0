"""The OCI distribution client: ``pull``, ``push``, ``login`` and ``logout``.

Modules, each with one job: :mod:`.transport` (HTTP, TLS, scheme), :mod:`.auth` (challenges
and tokens), :mod:`.credentials` (Docker's config.json), :mod:`.session` (authenticated
requests), :mod:`.fetch` (verified documents), :mod:`.body` (streamed layer bodies),
:mod:`.pull`, :mod:`.push`, :mod:`.login`, :mod:`.sources` (where blobs live, for mounts)
and :mod:`.progress` (how transfers are reported). Nothing here prints.
"""
