#!/usr/bin/python3
"""A real SMTP server (aiosmtpd) on loopback that keeps every accepted message for the tests.

Each accepted message is written to OUT_DIR as <n>.json with the envelope, the decoded subject
and the decoded text and HTML parts, plus <n>.eml with the raw bytes as received. It prints
"READY <port>" on stdout once listening, so tests never race on a port.

Flags:
  --reply-code N      every DATA is answered with N (e.g. 451, 550) instead of accepting
  --keep-refused      with --reply-code, still write refused messages, to OUT_DIR/refused/
  --show              print each message to stderr (the README's demo)
  --tls-cert/--tls-key  a certificate and key (PEM) for the two TLS modes:
  --starttls          offer STARTTLS and require it before MAIL FROM
  --implicit-tls      TLS from the first byte (SMTPS)
  --auth-user/--auth-password  require AUTH (PLAIN or LOGIN) with this account; AUTH is
                      offered only over TLS unless --auth-plaintext
Without --starttls or --implicit-tls the server speaks plain SMTP and offers no STARTTLS.
Every command verb the server receives is appended to OUT_DIR/commands.log as
"VERB tls=0|1", so a test can prove nothing was sent in clear.
"""
import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult


class Capture:
    def __init__(self, out_dir, reply_code, keep_refused, show):
        self.out_dir = out_dir
        self.reply_code = reply_code
        self.keep_refused = keep_refused
        self.show = show
        self.count = 0

    def write(self, directory, envelope):
        self.count += 1
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parts = {"text": None, "html": None}
        for part in msg.walk():
            kind = part.get_content_type()
            if kind == "text/plain" and parts["text"] is None:
                parts["text"] = part.get_content()
            elif kind == "text/html" and parts["html"] is None:
                parts["html"] = part.get_content()
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "headers": {k: str(v) for k, v in msg.items()},
            "text": parts["text"],
            "html": parts["html"],
        }
        os.makedirs(directory, exist_ok=True)
        base = os.path.join(directory, f"{self.count:06d}")
        with open(base + ".eml", "wb") as f:
            f.write(raw)
        tmp = base + ".json.tmp"
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, base + ".json")
        return record

    async def handle_DATA(self, server, session, envelope):
        if self.reply_code:
            if self.keep_refused:
                self.write(os.path.join(self.out_dir, "refused"), envelope)
            return f"{self.reply_code} test server refuses this message"
        record = self.write(self.out_dir, envelope)
        if self.show:
            print(f"\n--- mail to {', '.join(envelope.rcpt_tos)}: {record['subject']}\n"
                  f"{record['text']}---", file=sys.stderr, flush=True)
        return "250 OK captured"


class PipeliningCapture(Capture):
    """Capture that also offers PIPELINING (RFC 2920) in its EHLO reply. aiosmtpd reads
    commands one line at a time from its buffer, so it serves pipelined groups; it just does
    not say so by default."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return responses[:-1] + ["250-PIPELINING", responses[-1]]


class LoggingSMTP(SMTP):
    """aiosmtpd's server, noting each command verb and whether TLS was on when it came."""

    def __init__(self, *args, log_path, implicit_tls, **kwargs):
        super().__init__(*args, **kwargs)
        self.log_path = log_path
        self.implicit_tls = implicit_tls

    def note(self, verb):
        tls = 1 if (self.implicit_tls or self._tls_protocol is not None) else 0
        with open(self.log_path, "a") as f:
            f.write(f"{verb} tls={tls}\n")

    async def smtp_EHLO(self, arg):
        self.note("EHLO")
        return await super().smtp_EHLO(arg)

    async def smtp_STARTTLS(self, arg):
        self.note("STARTTLS")
        return await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg):
        self.note("AUTH")
        return await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg):
        self.note("MAIL")
        return await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg):
        self.note("RCPT")
        return await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg):
        self.note("DATA")
        return await super().smtp_DATA(arg)


def authenticator_for(user, password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (auth_data.login == user.encode() and auth_data.password == password.encode())
        # handled=False: aiosmtpd itself answers 535 to a wrong password.
        return AuthResult(success=ok, handled=False)
    return authenticate


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reply-code", type=int, default=0)
    parser.add_argument("--keep-refused", action="store_true")
    parser.add_argument("--show", action="store_true", help="print each message to stderr")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--starttls", action="store_true")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--auth-user")
    parser.add_argument("--auth-password")
    parser.add_argument("--auth-plaintext", action="store_true")
    parser.add_argument("--pipelining", action="store_true", help="offer PIPELINING")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    kind = PipeliningCapture if args.pipelining else Capture
    handler = kind(args.out_dir, args.reply_code, args.keep_refused, args.show)

    context = None
    if args.starttls or args.implicit_tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(args.tls_cert, args.tls_key)

    smtp_options = {"enable_SMTPUTF8": True, "hostname": "capture.test"}
    if args.starttls:
        smtp_options.update(tls_context=context, require_starttls=True)
    if args.auth_user:
        smtp_options.update(
            authenticator=authenticator_for(args.auth_user, args.auth_password or ""),
            auth_required=True,
            # Over implicit TLS the whole connection is encrypted already.
            auth_require_tls=not (args.auth_plaintext or args.implicit_tls),
        )
    log_path = os.path.join(args.out_dir, "commands.log")

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: LoggingSMTP(handler, log_path=log_path, implicit_tls=args.implicit_tls,
                            **smtp_options),
        host=args.host,
        port=args.port,
        ssl=context if args.implicit_tls else None,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
