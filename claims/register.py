"""Importing this module plugs the care-sheet exchange into the server.

It registers the ``Claim`` and ``CoverageEligibilityRequest`` submission handlers, the
operations (``Claim/$submit``, ``Claim/$review-queue``, ``Claim/{id}/$decide``,
``Claim/{id}/$request-info``, ``Organization/{id}/$sla``, ``Subscription/{id}/$status``, ``$registry-feed``,
``Organization/{id}/$coverage-transitions``) and
the write hooks (ClaimResponse subscriptions accepted; a provider's answer resumes a paused
review clock; the statistics' placement of patients), and what an operator watches (``claims.observe``).
"""
import claims.dispense_operations  # noqa: F401  ($remaining, $price, $bill)
import claims.dispensing  # noqa: F401  (dispensing under a lock)
import claims.eligibility  # noqa: F401
import claims.messaging.register  # noqa: F401  (patient SMS/e-mail notices, GET /status/{code})
import claims.notify  # noqa: F401
import claims.observe  # noqa: F401  (claims gauges, the queue's readiness check)
import claims.operations  # noqa: F401
import claims.prescribing.checks  # noqa: F401  (checks at prescribing: DetectedIssues)
import claims.prescribing.ready_notice  # noqa: F401  (after the checks: the patient told the number)
import claims.registry_feed  # noqa: F401
import claims.review  # noqa: F401
import claims.sla  # noqa: F401
import claims.statistics.operations  # noqa: F401  (MeasureReport/$aggregate, $fairness)
import claims.statistics.placement  # noqa: F401  (patient placement, coverage starts: a write hook)
import claims.submission  # noqa: F401
