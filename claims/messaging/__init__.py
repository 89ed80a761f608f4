"""Patient notifications by SMS and e-mail (docs/messaging.md).

``notices.notify`` is the one front door: domain code (decisions, payments, ``$start-care``,
``$break-glass``, the coverage cliff) calls it inside its own transaction; it writes the
notification ``Communication`` and a durable outbox row.  ``dispatch`` sends what is due
through the ``adapters`` (an SMS gateway's HTTP API, SMTP) on the channel the patient prefers
(``preferences``); ``status_code`` is the short code printed on letters and receipts.
"""
