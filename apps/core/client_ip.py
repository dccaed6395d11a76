"""The caller's IP address, the same way for every limit and allowlist.

X-Forwarded-For is read only when the connection comes from a proxy listed in
UNTRACE_TRUSTED_PROXIES (addresses or networks): its hops are walked from the
right and the first address that is not a trusted proxy is the client. Otherwise
the socket's address is the client, whatever the header says, so a caller cannot
pick the address its limits are counted under. UNTRACE_TRUST_X_FORWARDED_FOR=true
trusts the header's first hop from any peer (a load balancer that overwrites it).
"""

from __future__ import annotations

import functools
import ipaddress

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _trusted(address: str | None, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None) -> str | None:
    """The client's address from the socket's peer and the X-Forwarded-For header."""
    if not forwarded_for:
        return peer
    if settings.UNTRACE_TRUST_X_FORWARDED_FOR:
        return forwarded_for.split(",", 1)[0].strip() or peer
    networks = _networks(tuple(settings.UNTRACE_TRUSTED_PROXIES))
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer
