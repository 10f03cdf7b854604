#!/usr/bin/python3
"""A real SMTP server (aiosmtpd) on loopback that keeps every accepted message for the tests.

Each accepted message is written to OUT_DIR as <n>.json with the envelope, the decoded subject
and the decoded text and HTML parts, plus <n>.eml with the raw bytes as received. It prints
"READY <port>" on stdout once listening, so tests never race on a port.

Flags: --reply-code makes every DATA answer with that SMTP code (e.g. 451, 550) instead of
accepting; --show prints each message to stderr (the README's demo).
"""
import argparse
import asyncio
import email
import email.policy
import json
import os
import sys

from aiosmtpd.smtp import SMTP


class Capture:
    def __init__(self, out_dir, reply_code, show):
        self.out_dir = out_dir
        self.reply_code = reply_code
        self.show = show
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        if self.reply_code:
            return f"{self.reply_code} test server refuses this message"
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
        base = os.path.join(self.out_dir, f"{self.count:06d}")
        with open(base + ".eml", "wb") as f:
            f.write(raw)
        tmp = base + ".json.tmp"
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, base + ".json")
        if self.show:
            print(f"\n--- mail to {', '.join(envelope.rcpt_tos)}: {record['subject']}\n"
                  f"{record['text']}---", file=sys.stderr, flush=True)
        return "250 OK captured"


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reply-code", type=int, default=0)
    parser.add_argument("--show", action="store_true", help="print each message to stderr")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    handler = Capture(args.out_dir, args.reply_code, args.show)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, enable_SMTPUTF8=True, hostname="capture.test"),
        host=args.host,
        port=args.port,
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
