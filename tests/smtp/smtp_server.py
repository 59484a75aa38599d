#!/usr/bin/env python3
"""A real SMTP server for the marketplace's email tests, on aiosmtpd.

It speaks ESMTP with STARTTLS (given a certificate) and AUTH PLAIN/LOGIN (given
one or more users sharing a password; only after STARTTLS), refuses recipients
whose address starts with a chosen prefix for good (`550 5.1.1`) and those
starting with another for now (`451 4.3.0`, every time), and keeps every accepted
message as one JSON file in a folder: the envelope, whether the session was
encrypted and who was logged in, when it came, its decoded subject, Message-ID and
parts. Each refused recipient is kept the same way in a second folder (who, the
reply code, when), so a test can count the attempts a sender made.

With `--hold-until-senders N`, messages are held before being accepted until N
different logins have each begun one (at most 10 s): senders that would otherwise
run one after the other are made to overlap.

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
    p.add_argument("--user", action="append", default=[],
                   help="enables and requires AUTH with --password; repeat for more logins")
    p.add_argument("--password")
    p.add_argument("--reject-prefix", default="reject",
                   help="recipients whose address starts with this get 550")
    p.add_argument("--tempfail-prefix", default="tempfail",
                   help="recipients whose address starts with this get 451, every time")
    p.add_argument("--refused-dir", help="folder for refused recipients (default: none kept)")
    p.add_argument("--hold-until-senders", type=int, default=0,
                   help="hold messages until this many logins have begun one (at most 10 s)")
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
    if args.refused_dir:
        os.makedirs(args.refused_dir, exist_ok=True)

    def keep(folder, record):
        name = "%d-%s" % (time.time_ns(), uuid.uuid4().hex)
        tmp = os.path.join(folder, "." + name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        # Atomic: a reader never sees half a record.
        os.rename(tmp, os.path.join(folder, name + ".json"))

    def login_of(session):
        if isinstance(session.auth_data, LoginPassword):
            return session.auth_data.login.decode()
        return None

    # Logins that have begun a message (reached RCPT), for --hold-until-senders.
    senders = set()

    class Recorder:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            senders.add(login_of(session))
            refusal = None
            if address.lower().startswith(args.reject_prefix):
                refusal = (550, "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address)
            elif address.lower().startswith(args.tempfail_prefix):
                refusal = (451, "451 4.3.0 <%s>: Temporary failure, try again later" % address)
            if refusal is not None:
                if args.refused_dir:
                    keep(args.refused_dir, {"rcpt": address, "code": refusal[0],
                                            "login": login_of(session), "at": time.time()})
                return refusal[1]
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            deadline = time.monotonic() + 10
            while len(senders) < args.hold_until_senders and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
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
                "auth_login": login_of(session),
                "subject": str(msg["Subject"] or ""),
                "message_id": str(msg["Message-ID"] or ""),
                "from": str(msg["From"] or ""),
                "to": str(msg["To"] or ""),
                "content_type": msg.get_content_type(),
                "text": text.get_content() if text is not None else None,
                "html": html.get_content() if html is not None else None,
                "received_at": time.time(),
            }
            keep(args.maildir, record)
            return "250 2.0.0 Message accepted for delivery"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() in args.user
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
