"""Low-level container machinery: OCI spec, runtime driver, conmon monitor, overlay rootfs.

Nothing here touches the database or prints; the ContainerService composes these pieces.
Modules are imported individually (``from berth.container import spec``) so that a
``berth run`` only pays for what it uses.
"""
