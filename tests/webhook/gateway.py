#!/usr/bin/python3
"""An HTTPS SMS gateway on loopback for the end-to-end tests, answering as Twilio's Messages API
does: 201 and the message as JSON, or (with --status) a 400, 429 or 500 with Twilio's error
body. Every request is recorded as OUT_DIR/NNNN.json (method, path, headers, raw body, form
fields decoded by Python's own parser) before the answer, so a test reads the code from the
request; with --delay the answer comes that many seconds after the request was recorded (a
gateway slower than the client's deadline).

Usage: gateway.py OUT_DIR --cert PEM --key PEM [--status 201|400|429|500] [--delay SECONDS]
Prints "READY PORT" once listening on 127.0.0.1.
"""

import argparse
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--status", type=int, default=201)
    parser.add_argument("--delay", type=float, default=0)
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            record = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
                "form": urllib.parse.parse_qsl(body, keep_blank_values=True),
            }
            with LOCK:
                n = len([f for f in os.listdir(args.out_dir) if f.endswith(".json")])
                tmp = os.path.join(args.out_dir, "%04d.tmp" % n)
                with open(tmp, "w") as f:
                    json.dump(record, f)
                os.rename(tmp, os.path.join(args.out_dir, "%04d.json" % n))
            if args.delay:
                time.sleep(args.delay)
            form = dict(record["form"])
            if args.status == 201:
                answer = {
                    "sid": "SM%032d" % n,
                    "status": "queued",
                    "to": form.get("To"),
                    "from": form.get("From"),
                    "body": form.get("Body"),
                    "num_segments": "1",
                }
            elif args.status == 400:
                answer = {
                    "code": 21211,
                    "message": "The 'To' number is not a valid phone number.",
                    "more_info": "https://www.twilio.com/docs/errors/21211",
                    "status": 400,
                }
            elif args.status == 429:
                answer = {
                    "code": 20429,
                    "message": "Too Many Requests",
                    "more_info": "https://www.twilio.com/docs/errors/20429",
                    "status": 429,
                }
            else:
                answer = {"code": 20500, "message": "Internal Server Error", "status": args.status}
            data = json.dumps(answer).encode()
            self.send_response(args.status)
            self.send_header("Content-Type", "application/json")
            if args.status == 429:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = handle_any
        do_PUT = handle_any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("READY %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
