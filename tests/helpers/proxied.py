"""An SMTP client behind a pretend TCP load balancer: each connection starts with
the PROXY protocol (v1) header naming `client_ip` as the client."""

from __future__ import annotations

import smtplib
import socket


class ProxiedSMTP(smtplib.SMTP):
    def __init__(self, client_ip: str, host: str, port: int, timeout: float = 30) -> None:
        self.client_ip = client_ip
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((host, port), timeout)
        sock.sendall(f"PROXY TCP4 {self.client_ip} 127.0.0.1 40000 {port}\r\n".encode())
        return sock
