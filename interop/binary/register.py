"""Plugs Binary object storage into the server: its routes, the pointer guard and the check of
the bytes against the declared type on writes."""
from ehr import hooks
from interop.binary.api import router
from interop.binary.content import check_inline_document
from interop.binary.pointer import refuse_foreign_pointer

hooks.routers.append(router)
hooks.validator(refuse_foreign_pointer)
hooks.validator(check_inline_document)
