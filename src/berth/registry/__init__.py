"""Registry: the OCI distribution client (push/pull/login) and server (``berth registry``)."""
