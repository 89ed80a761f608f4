"""Plugs Binary object storage into the server: its routes and the pointer guard on writes."""
from ehr import hooks
from interop.binary.api import router
from interop.binary.pointer import refuse_foreign_pointer

hooks.routers.append(router)
hooks.validator(refuse_foreign_pointer)
