"""Resource records as text in miekg/dns `RR.String()` form, which blackbox's DNS validators match.

miekg writes `name<TAB>ttl<TAB>class<TAB>type<TAB>rdata`; dnspython's own to_text() separates with
spaces, splits base64/hex into chunks and writes DS/SSHFP digests in lowercase, so the header is
built here and the rdata is rendered unchunked, with miekg's case where it differs.
"""

from __future__ import annotations

from collections.abc import Iterator

import dns.message
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from probe_exporter.config.blackbox import MIEKG_ONLY_TYPES

# Names miekg has and dnspython lacks (dnspython would print TYPE34 for ATMA).
_MIEKG_TYPE_NAMES = {number: name for name, number in MIEKG_ONLY_TYPES.items()}
# Types whose digest/fingerprint miekg prints in upper-case hex.
_UPPER_HEX_TYPES = {dns.rdatatype.DS, dns.rdatatype.CDS, dns.rdatatype.DLV, dns.rdatatype.SSHFP}


def _class_text(rdclass: int) -> str:
    try:
        return dns.rdataclass.to_text(dns.rdataclass.RdataClass.make(rdclass))
    except ValueError:
        return f"CLASS{rdclass}"


def rdata_text(rdata: dns.rdata.Rdata) -> str:
    text = rdata.to_text(chunksize=0)
    if rdata.rdtype in _UPPER_HEX_TYPES:
        head, _, digest = text.rpartition(" ")
        text = f"{head} {digest.upper()}" if head else digest.upper()
    return text


def rr_texts(section: list[dns.rrset.RRset]) -> Iterator[str]:
    """One miekg-style line per record (an RRset of three A records gives three lines)."""
    for rrset in section:
        header = (f"{rrset.name.to_text()}\t{rrset.ttl}\t{_class_text(rrset.rdclass)}\t"
                  f"{_MIEKG_TYPE_NAMES.get(rrset.rdtype) or dns.rdatatype.to_text(rrset.rdtype)}\t")
        for rdata in rrset:
            yield header + rdata_text(rdata)


def opt_text(message: dns.message.Message) -> str:
    """miekg's OPT pseudo-record text (it sits in the additional section there, not in dnspython)."""
    flags = "flags: do; " if message.ednsflags & 0x8000 else "flags:; "
    return f"\n;; OPT PSEUDOSECTION:\n; EDNS: version {message.edns}; {flags}udp: {message.payload}"


def additional_texts(message: dns.message.Message) -> list[str]:
    texts = list(rr_texts(message.additional))
    if message.opt is not None:
        texts.append(opt_text(message))
    return texts


def record_count(section: list[dns.rrset.RRset]) -> int:
    return sum(len(rrset) for rrset in section)
