"""Named and anonymous volumes: rows in ``berth.db``, bytes in ``<root>/volumes/<name>/_data``.

The package is split by job so the ``run`` path pays only for what it uses:

* :mod:`.specs`   pure parsing of ``-v``, ``--mount``, ``--volumes-from`` and image VOLUMEs;
* :mod:`.service` the volume rows and directories (create, list, rm, prune, in-use);
* :mod:`.seed`    Docker's copy-up: an empty volume takes the image's files at its path;
* :mod:`.hooks`   what the container service calls at create, prepare and removal.

Nothing here is imported by a ``run`` without volumes (the hooks are imported lazily).
"""
