"""The subset of Go's ``text/template`` that Docker users put in ``--format``.

People paste format strings from Docker docs and scripts (``{{.ID}}\\t{{.Names}}``,
``{{json .Config.Labels}}``, ``{{range .Mounts}}{{.Source}} {{end}}``), so berth parses the
same syntax and prints values the way Go's ``fmt`` does (``true``, ``[a b]``,
``map[k:v]``, ``<no value>``). Templates compile once into a node tree and render per row,
because listings render the same template a thousand times.

What is here: fields and chains (``.A.B``, ``$v.A``, ``(pipe).A``), pipelines, variables
(``:=``/``=``), ``if``/``else if``/``else``/``with``/``range`` (with ``$k, $v :=``, ``else``,
``break``, ``continue``), trim markers, comments, and Docker's function set plus Go's
builtins (``index``, ``slice``, ``len``, ``print*``, comparisons, ``and``/``or``/``not``).
Not here: ``define``/``template``/``block`` and method calls with arguments.

Data are Python values: a field resolves a mapping key first, then an attribute. A missing
field on the *root* mapping (a row, an inspect object: a Go struct in Docker) is an error,
as Go's; a missing key in a nested mapping (``.Config.Labels.x``: a Go map) prints
``<no value>``, as Go's. Every error is an :class:`InvalidArgument` with Docker's one-line
``template parsing error: template: ...`` message.
"""

from __future__ import annotations

from berth.cli.gotemplate.template import Template, compile_template, render
from berth.cli.gotemplate.values import go_json, go_sprint, go_sprintf

__all__ = ["Template", "compile_template", "go_json", "go_sprint", "go_sprintf", "render"]
