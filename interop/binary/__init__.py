"""Binary resources whose bytes live in object storage (interop.storage), not in the row.

The row is a normal versioned Binary whose ``data`` is replaced by an extension on ``_data``
naming the object (key, size, sha256); every write makes a new object, so each version keeps
its own bytes.  See docs/storage.md.
"""
