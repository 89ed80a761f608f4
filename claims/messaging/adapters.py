"""How a text leaves the server: an SMS gateway's HTTP API, or SMTP.

SMS gateway: ``POST <claims_sms_gateway_url>`` with the JSON body ``{"to": "+2126…",
"text": "…"}`` and ``Authorization: Bearer <claims_sms_gateway_token>``; any 2xx is accepted.
A 429, a 5xx or a transport error may pass on a retry (``Transient``); another 4xx will not.
SMTP: the standard library's ``smtplib`` in a thread (STARTTLS and login when configured), one
UTF-8 message per notification.
"""
from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

import httpx

from claims.messaging.catalogue import SUBJECTS
from claims.messaging.preferences import Route
from claims.settings import ClaimsSettings


class Transient(Exception):
    """A failure that may pass on a retry."""


class Refused(Exception):
    """A failure a retry will not fix (unknown number, address refused, channel not configured)."""


async def send_sms(http: httpx.AsyncClient, settings: ClaimsSettings, to: str, text: str) -> None:
    if not settings.sms_gateway_url:
        raise Refused("no SMS gateway configured")
    headers = {}
    if settings.sms_gateway_token is not None:
        headers["Authorization"] = f"Bearer {settings.sms_gateway_token.get_secret_value()}"
    try:
        resp = await http.post(settings.sms_gateway_url, json={"to": to, "text": text}, headers=headers,
                               timeout=settings.notify_timeout_seconds)
    except httpx.TransportError as exc:
        raise Transient(f"SMS gateway unreachable: {type(exc).__name__}") from None
    if resp.status_code == 429 or resp.status_code >= 500:
        raise Transient(f"SMS gateway HTTP {resp.status_code}")
    if resp.status_code >= 300:
        raise Refused(f"SMS gateway HTTP {resp.status_code}")


def _smtp_send(settings: ClaimsSettings, message: EmailMessage) -> None:
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.notify_timeout_seconds) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username and settings.smtp_password is not None:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        smtp.send_message(message)


async def send_email(settings: ClaimsSettings, to: str, language: str, text: str) -> None:
    if not settings.smtp_host:
        raise Refused("no SMTP server configured")
    message = EmailMessage()
    message["From"] = settings.smtp_sender
    message["To"] = to
    message["Subject"] = SUBJECTS[language]
    message.set_content(text)
    try:
        await asyncio.to_thread(_smtp_send, settings, message)
    except smtplib.SMTPRecipientsRefused:
        raise Refused("address refused by the SMTP server") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise Transient(f"SMTP: {type(exc).__name__}") from None


async def send(http: httpx.AsyncClient, settings: ClaimsSettings, route: Route, text: str) -> None:
    if route.channel == "sms":
        await send_sms(http, settings, route.to, text)
    else:
        await send_email(settings, route.to, route.language, text)
