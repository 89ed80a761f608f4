"""What the domain packages add to the generic server, loaded once per process.

Operations register themselves when their module is imported; hooks (profile validation on
write, prescription numbers, care-sheet submission, the terminology behind ``:in``) are
installed here, so the app factory has a single place to call.
"""
from __future__ import annotations

import importlib

OPERATION_MODULES = (
    "ehr.operations.everything",
    "ehr.operations.validate",
    "ehr.operations.terminology",
)

_loaded = False


def load_plugins() -> None:
    global _loaded
    if _loaded:
        return
    for name in OPERATION_MODULES:
        importlib.import_module(name)
    from ehr.search.terminology import set_terminology
    from profiles.terminology import get_terminology
    from profiles.terminology.search_hook import SearchTerminology

    set_terminology(SearchTerminology(get_terminology))  # loaded on first use: a worker starts fast
    from ehr.hooks import base_check, validator
    from profiles.hooks import check_base_definition, check_moroccan_write

    base_check(check_base_definition)
    validator(check_moroccan_write)
    import ehr.security.prescribing  # noqa: F401  (server-assigned prescription numbers)
    import claims.register  # noqa: F401  (care-sheet submission, eligibility, review, $sla…)
    import interop.paper.register  # noqa: F401  (the paper channel's printable letters)
    import interop.binary.register  # noqa: F401  (Binary bytes in object storage)
    import interop.bulk.register  # noqa: F401  (FHIR Bulk Data $export)
    import interop.fhirxml.register  # noqa: F401  (FHIR XML in and out)

    _loaded = True
