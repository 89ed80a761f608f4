"""Importing this module registers the paper channel's operations (``$letter``, ``$access-report``, ``$assist``, ``$print`` of prescriptions and care sheets, ``$scan``)."""
import interop.paper.access_report  # noqa: F401
import interop.paper.assist  # noqa: F401
import interop.paper.care_sheet  # noqa: F401
import interop.paper.decision  # noqa: F401
import interop.paper.payment  # noqa: F401
import interop.paper.prescription  # noqa: F401
import interop.paper.scan  # noqa: F401
