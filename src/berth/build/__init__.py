"""``berth build``'s pure front half: Dockerfile → a plan the executor can run.

Nothing in this package touches containers or the store; every module turns text and files
into values, so all of it is unit-testable:

* :mod:`.parser` — Dockerfile text → validated :class:`~.parser.Instruction` objects
  (BuildKit's own tokenizer via the ``dockerfile`` package, plus Docker's rules);
* :mod:`.expand` — ``$var`` / ``${var:-x}`` expansion and word splitting;
* :mod:`.dockerignore` — which context files a build may not see;
* :mod:`.context` — the build context (directory, tar, or none), COPY source globbing that
  cannot leave it, and a content hash for the cache;
* :mod:`.mounts` — ``RUN --mount`` specs;
* :mod:`.plan` — stages, ``--target`` pruning, ARG/ENV scoping, expanded steps;
* :mod:`.cachekey` — when a step may reuse an earlier layer.

Submodules are imported on demand (``from berth.build.plan import plan``) so that importing
the package stays cheap for commands that never build.
"""
