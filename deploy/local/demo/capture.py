"""Local stand-ins for the demo's outbound channels: a real SMTP server and a Slack API capture.

``python deploy/local/demo/capture.py DIR [--smtp-port 8025] [--slack-port 8007]``

- SMTP (aiosmtpd) on 127.0.0.1: every message is stored as ``DIR/mail/<n>-<recipient>.eml``.
- A local HTTPS endpoint that answers ``POST /api/chat.postMessage`` as Slack's Web API does
  (``{"ok": true, "ts": …}``) and stores each request body as ``DIR/slack/<n>-<channel>.json``.
  It is a capture, not Slack: nothing leaves the machine. Its certificate is self-signed
  (``DIR/slack-capture.pem``, made with ``openssl`` on first use); the notifier trusts it through
  ``SSL_CERT_FILE``, so the notifier's rule that Slack is only reached over HTTPS stays on.

Runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import signal
import ssl
import subprocess
import threading
import time
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

_SAFE = re.compile(r"[^A-Za-z0-9@._-]+")
_numbers = itertools.count(1)


def _name(text: str) -> str:
    return _SAFE.sub("_", text)[:60] or "unknown"


class MailStore:
    """aiosmtpd handler: each accepted message becomes one .eml file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        """Store the message as received and accept it."""
        content = envelope.original_content or b""
        to = ",".join(envelope.rcpt_tos)
        path = self.folder / f"{time.time_ns()}-{next(_numbers):04d}-{_name(to)}.eml"
        path.write_bytes(content)
        subject = message_from_bytes(content).get("Subject", "")
        print(f"mail capture: {to}: {subject}", flush=True)
        return "250 Message accepted for delivery"


def slack_handler(folder: Path) -> type[BaseHTTPRequestHandler]:
    """A request handler that answers chat.postMessage like Slack and stores what would have been posted."""

    class SlackCapture(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.rstrip("/") != "/api/chat.postMessage":
                self._answer(404, {"ok": False, "error": "unknown_method"})
                return
            if not (self.headers.get("Authorization") or "").startswith("Bearer "):
                self._answer(200, {"ok": False, "error": "not_authed"})
                return
            try:
                body: dict[str, Any] = json.loads(raw)
            except ValueError:
                self._answer(200, {"ok": False, "error": "invalid_json"})
                return
            channel = str(body.get("channel") or "")
            ts = f"{time.time():.6f}"
            record = {"captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "method": "chat.postMessage", "body": body}
            path = folder / f"{time.time_ns()}-{next(_numbers):04d}-{_name(channel)}.json"
            path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
            print(f"slack capture: {channel}: {str(body.get('text', ''))[:100]}", flush=True)
            self._answer(200, {"ok": True, "channel": channel, "ts": ts, "message": {"text": body.get("text", ""), "ts": ts}})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: each capture prints its own line."""

    return SlackCapture


def certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made once with openssl): (certificate, key)."""
    cert, key = folder / "slack-capture.pem", folder / "slack-capture.key"
    if not (cert.exists() and key.exists()):
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=127.0.0.1"),
                *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
            ],
            check=True,
            capture_output=True,
        )
        key.chmod(0o600)
    return cert, key


def main() -> int:
    """Serve both captures until told to stop."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path)
    parser.add_argument("--smtp-port", type=int, default=8025)
    parser.add_argument("--slack-port", type=int, default=8007)
    args = parser.parse_args()
    mail, slack = args.dir / "mail", args.dir / "slack"
    for folder in (mail, slack):
        folder.mkdir(parents=True, exist_ok=True)
    cert, key = certificate(args.dir)

    smtp = Controller(MailStore(mail), hostname="127.0.0.1", port=args.smtp_port)
    smtp.start()
    https = ThreadingHTTPServer(("127.0.0.1", args.slack_port), slack_handler(slack))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    https.socket = context.wrap_socket(https.socket, server_side=True)
    threading.Thread(target=https.serve_forever, daemon=True).start()
    print(f"mail capture: 127.0.0.1:{args.smtp_port} → {mail}/", flush=True)
    print(f"slack capture: https://127.0.0.1:{args.slack_port}/api → {slack}/", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    https.shutdown()
    smtp.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
