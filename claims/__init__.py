"""Care-sheet exchange: submission, routing, adjudication within 48 hours, review, payment.

Importing ``claims.register`` plugs the package into the server (submission handlers,
operations, write hooks); the rest can be imported without side effects.
"""
