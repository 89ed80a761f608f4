"""Checks when a prescription or a test order is written (issue 11, "checks at prescribing").

A doctor's (or counter agent's) write of a ``MedicationRequest`` is checked against the patient's
record and the national medicines list — duplicate therapy, allergy or intolerance, a medicine
unknown to the list or not reimbursed by the patient's fund, a daily dose outside the usual
range — and of a ``ServiceRequest`` against the same test done or ordered recently.  Findings
refuse the write (409 with the ``DetectedIssue``s contained in the OperationOutcome) unless the
doctor overrides them with a reason (the ``override-reason`` extension): the DetectedIssues are
then stored with their mitigation and linked from the request.

``checks`` is the write hook; ``medication`` and ``repeat_tests`` find; ``findings`` turns what
they find into DetectedIssues, refusals and overrides, in the caller's language.
"""
