"""Who may associate: the calling AE title allowlist (DIMSE_ALLOWED_AES), optionally pinned to addresses.

An entry is ``AETITLE`` (from anywhere) or ``AETITLE@ADDR|ADDR...`` where ADDR is an IP address or a
network in CIDR form (``CT1@10.1.2.0/24``). AE titles compare without leading/trailing spaces and
case-sensitively, as DICOM defines them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Allowlist:
    any_ae: bool
    entries: dict[str, tuple[Network, ...] | None]  # None: any address

    def allows(self, ae_title: str, address: str | None) -> bool:
        if self.any_ae:
            return True
        ae_title = ae_title.strip()
        if ae_title not in self.entries:
            return False
        networks = self.entries[ae_title]
        if networks is None:
            return True
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return any(ip in net for net in networks)


def parse_allowlist(raw: Iterable[str], *, any_ae: bool = False) -> Allowlist:
    """Parse the setting; ValueError with a message naming the bad entry (AE titles are not patient data)."""
    entries: dict[str, tuple[Network, ...] | None] = {}
    for entry in raw:
        title, _, addresses = entry.partition("@")
        title = title.strip()
        if not title or len(title) > 16 or "\\" in title or not title.isprintable():
            raise ValueError(f"{entry!r}: an AE title is 1 to 16 printable characters")
        if not addresses:
            entries[title] = None
            continue
        networks = []
        for part in addresses.split("|"):
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{entry!r}: {part.strip()!r} is not an IP address or network") from None
        if title in entries and entries[title] is None:
            continue  # also listed without addresses: allowed from anywhere
        entries[title] = (*(entries.get(title) or ()), *networks)
    return Allowlist(any_ae=any_ae, entries=entries)


def allowlist_from_settings() -> Allowlist:
    from django.conf import settings

    return parse_allowlist(settings.DIMSE_ALLOWED_AES, any_ae=settings.DIMSE_ALLOW_ANY_AE)
