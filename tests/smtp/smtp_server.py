#!/usr/bin/env python3
"""A real SMTP server for the marketplace's email tests, on aiosmtpd.

It speaks ESMTP with STARTTLS (given a certificate) and AUTH PLAIN/LOGIN (given a
user and password; only after STARTTLS), rejects recipients whose address starts
with a chosen prefix with `550 5.1.1`, and keeps every accepted message as one
JSON file in a folder: the envelope, whether the session was encrypted and who was
logged in, the raw message, and its decoded subject, Message-ID and parts.

The Rust tests start it as a child process (tests/src/smtp.rs) and read the folder.
It prints `READY <port>` on stdout once it accepts connections.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import ssl
import threading
import time
import uuid

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--maildir", required=True, help="folder for received messages")
    p.add_argument("--cert", help="PEM certificate: enables and requires STARTTLS")
    p.add_argument("--implicit-tls", action="store_true",
                   help="with --cert: TLS from the first byte (SMTPS) instead of STARTTLS")
    p.add_argument("--key", help="PEM private key of --cert")
    p.add_argument("--user", help="enables and requires AUTH with --password")
    p.add_argument("--password")
    p.add_argument("--reject-prefix", default="reject",
                   help="recipients whose address starts with this get 550")
    p.add_argument("--delay", type=float, default=0.0,
                   help="seconds to wait before accepting each message")
    args = p.parse_args()
    import logging
    if os.environ.get("MARKETPLACE_SMTP_DEBUG"):
        logging.basicConfig(level=logging.DEBUG)
    else:
        # aiosmtpd itself sets the deprecated Session.login_data and warns about it.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
    os.makedirs(args.maildir, exist_ok=True)

    class Recorder:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address.lower().startswith(args.reject_prefix):
                return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            if args.delay:
                await asyncio.sleep(args.delay)
            raw = envelope.original_content or envelope.content
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            text = msg.get_body(("plain",))
            html = msg.get_body(("html",))
            record = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "tls": (session.ssl is not None
                        or server.transport.get_extra_info("ssl_object") is not None),
                "auth_login": (session.auth_data.login.decode()
                               if isinstance(session.auth_data, LoginPassword) else None),
                "subject": str(msg["Subject"] or ""),
                "message_id": str(msg["Message-ID"] or ""),
                "from": str(msg["From"] or ""),
                "to": str(msg["To"] or ""),
                "content_type": msg.get_content_type(),
                "text": text.get_content() if text is not None else None,
                "html": html.get_content() if html is not None else None,
                "received_at": time.time(),
            }
            name = "%d-%s" % (time.time_ns(), uuid.uuid4().hex)
            tmp = os.path.join(args.maildir, "." + name + ".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(record, f)
            # Atomic: a reader never sees half a message.
            os.rename(tmp, os.path.join(args.maildir, name + ".json"))
            return "250 2.0.0 Message accepted for delivery"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == args.user
              and auth_data.password.decode() == args.password)
        # handled=False: aiosmtpd answers a failure with its own 535 reply.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    kwargs = {}
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
        if args.implicit_tls:
            kwargs.update(ssl_context=tls)
        else:
            kwargs.update(tls_context=tls, require_starttls=True)
    if args.user:
        # aiosmtpd's own TLS check only knows STARTTLS; under implicit TLS the
        # whole connection is encrypted already.
        kwargs.update(authenticator=authenticator, auth_required=True,
                      auth_require_tls=bool(args.cert) and not args.implicit_tls)
    controller = Controller(Recorder(), hostname=args.host, port=args.port, **kwargs)
    controller.start()
    print("READY %d" % args.port, flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
