"""Twilio's calls to the practice: delivery reports (status callbacks) and the texts recipients send (STOP,
START, HELP), each proven by its ``X-Twilio-Signature``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from http import HTTPStatus

from pydantic import SecretStr

from carecast.plugin import ChannelError, PracticeContext, Request, Response, Route, resolve
from carecast.plugin.audience import handle_inbound
from carecast_channels.sms.twilio import TwilioSender, signature_matches, twilio_signature

STATUS_PATH = "/twilio/status"
INBOUND_PATH = "/twilio/inbound"
_FORBIDDEN = Response.text(HTTPStatus.FORBIDDEN, "Forbidden.", "refused: X-Twilio-Signature does not match")


class TwilioEndpoints:
    """Twilio's calls to the practice, for the SMS channels with credentials.

    - ``POST /twilio/status``: status callbacks, handed to :meth:`SmsChannel.apply_status_callback`, which records
      the message delivered or failed. 204; 403 when the signature is wrong.
    - ``POST /twilio/inbound``: a text a recipient sent to the practice's number. Once its signature is proven,
      :func:`carecast.compliance.handle_inbound` records STOP / START and the answer is TwiML carrying the one
      confirmation (or the HELP text), or an empty ``<Response/>``.

    Each request must be signed (``X-Twilio-Signature``) with one channel's Auth Token for the URL Twilio called.
    """

    def __init__(self, channels: Sequence[TwilioSender]) -> None:
        """Raises CredentialError when an Auth Token cannot be read: read once now, so the server stops at start."""
        self.channels = channels
        self._tokens()

    def routes(self) -> tuple[Route, ...]:
        announced = tuple(
            (f"channels.{channel.instance}.status_callback", str(channel.config.status_callback))
            for channel in self.channels
            if channel.config.status_callback is not None
        )
        return Route("POST", STATUS_PATH, self.status, announced), Route("POST", INBOUND_PATH, self.inbound)

    def status(self, request: Request, practice: PracticeContext) -> Response:
        params, signature = request.form(), request.headers.get("x-twilio-signature", "")
        try:
            delivery = self._signed_by(request.url, params, signature).apply_status_callback(
                practice.ledger, request.url, params, signature
            )
        except ChannelError:
            return _FORBIDDEN
        sid, status = params.get("MessageSid", "?"), params.get("MessageStatus", "?")
        recorded = f"recorded {delivery.state}" if delivery else "no such message"
        return Response(HTTPStatus.NO_CONTENT, content_type=None, note=f"{sid} {status}: {recorded}")

    def inbound(self, request: Request, practice: PracticeContext) -> Response:
        params = request.form()
        try:
            self._signed_by(request.url, params, request.headers.get("x-twilio-signature", ""))
        except ChannelError:
            return _FORBIDDEN
        sender = params.get("From", "")
        if not sender or not sender.isprintable():
            # Twilio sends a phone number or a short code; a control character would fail the database.
            return Response.text(HTTPStatus.BAD_REQUEST, "From is missing or not an address.")
        reply = handle_inbound(practice.ledger, practice.settings.practice, sender, params.get("Body", ""))
        response = ET.Element("Response")
        if reply is not None:
            ET.SubElement(response, "Message").text = reply
        twiml = ET.tostring(response, encoding="utf-8", xml_declaration=True)
        return Response(HTTPStatus.OK, twiml, "text/xml; charset=utf-8", "replied" if reply else "no reply")

    def _signed_by(self, url: str, params: dict[str, str], signature: str) -> TwilioSender:
        """The SMS channel whose Twilio Auth Token signed this request.

        Raises ChannelError when none did; CredentialError when a token cannot be read.
        """
        for channel, token in zip(self.channels, self._tokens(), strict=True):
            if signature_matches(twilio_signature(token, url, params), signature):
                return channel
        names = ", ".join(channel.instance for channel in self.channels)
        raise ChannelError(names, "X-Twilio-Signature does not match")

    def _tokens(self) -> list[SecretStr]:
        return [resolve(c.config.credentials.auth_token) for c in self.channels if c.config.credentials]
