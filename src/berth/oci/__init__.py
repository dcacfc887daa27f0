"""Pure formats: references, digests, media types, manifests, layer tars, archives.

Nothing in here touches the store or global state; every function works on the files and
streams it is handed, so every other package can stand on it.
"""
