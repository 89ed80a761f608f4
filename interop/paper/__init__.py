"""The paper channel's outputs: printable, bilingual (Arabic and French) letters.

For patients who do not use the app, a counter agent (role ``paper-agent``) prints — or the
fund mails — what the app shows: the decision on a care sheet (``ExplanationOfBenefit`` or
``ClaimResponse`` ``/$letter``), a payment notice (``PaymentReconciliation/$letter``) and the
access report "who looked at my file" (``Patient/$access-report``).  Each is an A4 HTML page
(Jinja2 templates under ``templates/``, words in ``catalogue``), printed under the rules of
reading the resources it shows, and recorded in the patient's audit trail.

``import interop.paper.register`` plugs the operations into the server (``ehr.plugins``).
"""
