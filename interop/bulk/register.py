"""Plugs Bulk Data export in: the ``$export`` operations (on import) and the status/file routes."""
from ehr import hooks
from interop.bulk.api import router

hooks.routers.append(router)
