"""The service layer: one module per FHIR interaction, free of HTTP.

Each function takes a ``Context`` (an open connection inside the caller's transaction, the
public base URL, the caller's access filter) and plain values, and returns a ``Result`` the
REST layer turns into a response — or that a transaction Bundle turns into an entry.
"""
