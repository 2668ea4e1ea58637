"""The server's TLS credentials: its certificate and key, and for mutual TLS the CA that signs
client certificates (clients must then present one). The files are read again on the next
handshake after :meth:`ServerTls.reload` (SIGHUP), so certificates rotate without a restart;
files that no longer read keep the previous ones (logged)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import grpc

from gridshift.optimizer.errors import FieldViolation, InvalidInputError

log = logging.getLogger("gridshift.server")


class ServerTls:
    """Dynamic server credentials over the [security] files."""

    def __init__(self, security: Any) -> None:
        self._security = security
        self._reload = threading.Event()
        self.credentials = grpc.dynamic_ssl_server_credentials(
            self._configuration(), self._fetch,
            require_client_authentication=bool(security.client_ca))

    def reload(self) -> None:
        self._reload.set()

    def _configuration(self) -> Any:
        s = self._security
        key, cert = _read(s.tls_key, "tls_key"), _read(s.tls_cert, "tls_cert")
        ca = _read(s.client_ca, "client_ca") if s.client_ca else None
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def _fetch(self) -> Any:
        if not self._reload.is_set():
            return None
        self._reload.clear()
        try:
            configuration = self._configuration()
        except InvalidInputError as exc:
            log.error("TLS files not reloaded, keeping the previous ones: %s", exc)
            return None
        log.info("TLS certificate reloaded")
        return configuration


def server_credentials(security: Any) -> ServerTls:
    return ServerTls(security)


def _read(path: str, key: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInputError([FieldViolation(f"[security].{key}",
                                                f"cannot read {path}: {exc.strerror}")]) from None
    if b"-----BEGIN" not in data:
        raise InvalidInputError([FieldViolation(f"[security].{key}", f"{path} is not PEM")])
    return data
