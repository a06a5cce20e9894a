"""Where each device is reached and which files hold the model: from flags, the instance, or placeholders.

A value comes from the export's arguments first (``--address DEVICE=HOST[:PORT]``,
``--gguf PATH``, ``--hf-repo ID``), then from the instance (``devices[].address``,
``devices[].port``, ``models[].gguf``, ``models[].hf_repo``). What neither gives
becomes a shell variable the script asks for (:class:`~placement.export.shell.Var`),
never an invented value. Ports fall back to each engine's documented default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from placement.export.base import ExportArgumentError
from placement.export.shell import Var, Word, var_name
from placement.netaddr import hf_repo_problem, is_ip_address, parse_endpoint
from placement.problem import ModelSpec, Problem

__all__ = ["Artefacts", "resolve_artefacts"]


@dataclass(frozen=True)
class Artefacts:
    """The resolved addresses, ports and model artefacts of one export."""

    model: ModelSpec
    hosts: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=dict)
    gguf: str | None = None
    hf_repo: str | None = None
    stems: Mapping[str, str] = field(default_factory=dict)  # device id -> unique variable stem

    def _stem(self, device: str) -> str:
        return self.stems.get(device) or var_name(device)

    def known_host(self, device: str) -> str | None:
        return self.hosts.get(device)

    def host(self, device: str, what: str = "address") -> Word:
        """The device's address, or a variable asking for it (``what``: e.g. "IPv4 address")."""
        known = self.hosts.get(device)
        return known if known is not None else Var(f"{self._stem(device)}_HOST", f"the {what} of device {device}")

    def port(self, device: str, default: int) -> int:
        """The device's port, or the engine's ``default`` when none is given."""
        return self.ports.get(device, default)

    def has_port(self, device: str) -> bool:
        return device in self.ports

    def gguf_word(self, what: str) -> Word:
        """The GGUF file's path, or a variable asking for ``what`` (e.g. "the GGUF file of x in q4_k_m")."""
        return self.gguf if self.gguf is not None else Var("MODEL_GGUF", f"the path of {what}")

    def repo_word(self, what: str, catalog_fits: bool) -> tuple[Word, str | None]:
        """The Hugging Face repository to serve, and a note when it is the catalog's.

        ``catalog_fits``: whether the repository the catalog's config came from holds
        weights the engine can serve as they are (an unquantised checkpoint); when it
        does not (a pre-quantised checkpoint is needed), only a given id is used.
        """
        if self.hf_repo is not None:
            return self.hf_repo, None
        catalog = self.model.graph.hf_repo
        if catalog and catalog_fits:
            return catalog, (f"model repository {catalog} is the one the catalog's config of {self.model.id} "
                             "comes from; give another with --hf-repo or models[].hf_repo")
        return Var("MODEL_REPO", what), None


def _stems(problem: Problem) -> dict[str, str]:
    """A distinct variable stem per device id (``phone-1`` and ``phone_1`` would otherwise collide)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for node in problem.topology.nodes:
        stem, n = var_name(node.id), 2
        while stem in taken:
            stem, n = f"{var_name(node.id)}_{n}", n + 1
        taken.add(stem)
        out[node.id] = stem
    return out


def resolve_artefacts(problem: Problem, model: ModelSpec, addresses: Mapping[str, str] | None = None,
                      gguf: str | None = None, hf_repo: str | None = None) -> Artefacts:
    """Combine the export's arguments with the instance's fields.

    Parameters
    ----------
    addresses : mapping of device id to ``HOST``, ``HOST:PORT`` or ``[IPV6]:PORT``, optional
        Override the instance's ``devices[].address`` and ``devices[].port``.
    gguf, hf_repo : str, optional
        Override ``models[].gguf`` and ``models[].hf_repo``.

    Raises
    ------
    ExportArgumentError
        For an address of a device the instance does not have, a malformed address,
        or a malformed repository id.

    Examples
    --------
    >>> from placement import load_instance
    >>> problem = load_instance("instances/peer-edge.yaml")
    >>> a = resolve_artefacts(problem, problem.models[0], {"mac": "192.168.1.7:50052"})
    >>> a.host("mac"), a.port("mac", 1), a.host("pi")
    ('192.168.1.7', 50052, Var(name='PI_HOST', description='the address of device pi'))
    """
    hosts = {n.id: n.address for n in problem.topology.nodes if n.address is not None}
    ports = {n.id: n.port for n in problem.topology.nodes if n.port is not None}
    known = problem.topology.index
    for device, text in (addresses or {}).items():
        if device not in known:
            raise ExportArgumentError(f"--address {device}={text}: names no device of this instance "
                                      f"(devices: {', '.join(known)})")
        try:
            host, port = parse_endpoint(str(text))
        except ValueError as exc:
            raise ExportArgumentError(f"--address {device}={text}: {exc}") from None
        hosts[device] = host
        if port is not None:
            ports[device] = port
    if hf_repo is not None:
        problem_text = hf_repo_problem(hf_repo)
        if problem_text:
            raise ExportArgumentError(f"--hf-repo {problem_text}")
    if gguf is not None and not str(gguf).strip():
        raise ExportArgumentError("--gguf must be a path to a GGUF file, got an empty string")
    return Artefacts(model=model, hosts=hosts, ports=ports, gguf=gguf if gguf is not None else model.gguf,
                     hf_repo=hf_repo if hf_repo is not None else model.hf_repo, stems=_stems(problem))


def multiaddr_host(host: str) -> str:
    """The libp2p multiaddr protocol part for ``host``: ``/ip4/..``, ``/ip6/..`` or ``/dns/..``.

    >>> multiaddr_host("10.0.0.2"), multiaddr_host("fe80::1"), multiaddr_host("edge.local")
    ('/ip4/10.0.0.2', '/ip6/fe80::1', '/dns/edge.local')
    """
    if is_ip_address(host):
        return f"/ip6/{host}" if ":" in host else f"/ip4/{host}"
    return f"/dns/{host}"
