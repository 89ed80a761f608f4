"""Plugs patient messaging in: ``notify`` behind ``ehr.hooks.notify_patient``, ``GET /status/{code}``,
``POST /sms/inbound``."""
from claims.messaging import inbound
from claims.messaging.notices import notify
from claims.messaging.status_code import router
from ehr import hooks

hooks.patient_notifiers.append(notify)
hooks.routers.append(router)
hooks.routers.append(inbound.router)
