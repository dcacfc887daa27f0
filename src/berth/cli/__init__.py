"""The docker-compatible command line: parse flags, call :class:`berth.Engine`, format.

Each command lives in a module of its own and is imported only when it runs, so that
``berth run`` does not pay for parsing or importing what ``berth build`` needs.
"""
