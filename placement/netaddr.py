"""Syntax of the network addresses and artefact names that deployments are exported with.

One place says what a host, a port, a ``HOST[:PORT]`` endpoint and a Hugging Face
repository id look like, so the instance reader (``devices[].address``,
``devices[].port``, ``models[].hf_repo``) and the export flags (``--address``,
``--hf-repo``) accept and refuse the same text with the same words.

These values end up in shell scripts: a host is only letters, digits, dots,
hyphens and (for IPv6) colons, so nothing in it can be read by a shell as
anything but a word.

Examples
--------
>>> parse_endpoint("10.0.0.2:50052")
('10.0.0.2', 50052)
>>> parse_endpoint("[fe80::1]:9999"), parse_endpoint("fe80::1"), parse_endpoint("edge.local")
(('fe80::1', 9999), ('fe80::1', None), ('edge.local', None))
>>> host_problem("my laptop")
"must be a host name or an IP address, got 'my laptop'"
"""

from __future__ import annotations

import ipaddress
import re

__all__ = ["host_problem", "port_problem", "hf_repo_problem", "parse_endpoint", "is_ip_address", "MAX_PORT"]

MAX_PORT = 65535

# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
# Hugging Face repository ids: "owner/name" (letters, digits, '-', '_', '.'; at most 96 characters each).
_HF_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def is_ip_address(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address (rather than a host name).

    >>> is_ip_address("192.168.1.2"), is_ip_address("::1"), is_ip_address("edge.local")
    (True, True, False)
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_problem(host: object) -> str | None:
    """What is wrong with ``host`` as a host name or IP address, or ``None`` when it is one."""
    if not isinstance(host, str) or not (is_ip_address(host) or _HOST_NAME.match(host)):
        shown = repr(host) if isinstance(host, str) else type(host).__name__
        return f"must be a host name or an IP address, got {shown}"
    return None


def port_problem(port: object) -> str | None:
    """What is wrong with ``port`` as a TCP port (a whole number 1 to 65535), or ``None``."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= MAX_PORT:
        return f"must be a TCP port (a whole number from 1 to {MAX_PORT}), got {port!r}"
    return None


def hf_repo_problem(repo: object) -> str | None:
    """What is wrong with ``repo`` as a Hugging Face repository id (``owner/name``), or ``None``."""
    if not isinstance(repo, str) or not _HF_REPO.match(repo) or ".." in repo:
        shown = repr(repo) if isinstance(repo, str) else type(repo).__name__
        return f"must be a Hugging Face repository id like 'meta-llama/Llama-3.1-8B', got {shown}"
    return None


def parse_endpoint(text: str) -> tuple[str, int | None]:
    """Split ``HOST``, ``HOST:PORT``, ``IPV6`` or ``[IPV6]:PORT`` into host and port.

    Raises
    ------
    ValueError
        Naming what is wrong with the host or the port.
    """
    host, port_text = text, None
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or (close + 1 < len(text) and text[close + 1] != ":"):
            raise ValueError(f"expected HOST[:PORT] or [IPV6]:PORT, got {text!r}")
        host = text[1:close]
        port_text = text[close + 2:] if close + 1 < len(text) else None
        if not is_ip_address(host) or ":" not in host:
            raise ValueError(f"brackets hold an IPv6 address, got {host!r}")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    problem = host_problem(host)
    if problem:
        raise ValueError(f"host {problem}")
    if port_text is None:
        return host, None
    if not port_text.isdigit():
        raise ValueError(f"port must be a TCP port (a whole number from 1 to {MAX_PORT}), got {port_text!r}")
    port = int(port_text)
    problem = port_problem(port)
    if problem:
        raise ValueError(f"port {problem}")
    return host, port
