"""A real SMTP server for the notification tests (aiosmtpd, from PyPI through
scripts/requirements.txt). It offers and requires STARTTLS with a self-signed certificate for
127.0.0.1 that it writes to FOLDER/cert.pem, keeps each accepted message as FOLDER/mail/N.json
(envelope, subject, decoded plain-text and HTML bodies, raw content), and can answer the first N messages with a temporary refusal.
Runs until SIGTERM.

    python3 smtp_sink.py PORT FOLDER [REFUSE_FIRST]
"""

import datetime
import email
import email.policy
import ipaddress
import json
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(folder):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    with open(cert_path + ".tmp", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


class Sink:
    def __init__(self, folder, refuse_first):
        self.folder = os.path.join(folder, "mail")
        os.makedirs(self.folder, exist_ok=True)
        self.refuse_left = refuse_first
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.refuse_left > 0:
                self.refuse_left -= 1
                return "451 4.3.0 Try again later"
            self.count += 1
            number = self.count
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        part = lambda kind: (parsed.get_body((kind,)) or parsed).get_content()
        message = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "subject": str(parsed["Subject"]),
            "text": part("plain"),
            "html": part("html"),
            "data": envelope.content.decode("utf-8", "replace"),
        }
        path = os.path.join(self.folder, f"{number:04}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(message, f)
        os.replace(path + ".tmp", path)
        return "250 OK"


def main():
    port, folder = int(sys.argv[1]), sys.argv[2]
    refuse_first = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    cert_path, key_path = self_signed(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path + ".tmp", key_path)
    controller = Controller(
        Sink(folder, refuse_first),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
    )
    controller.start()
    # The certificate appears once the server answers: the test waits for it.
    os.replace(cert_path + ".tmp", cert_path)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
