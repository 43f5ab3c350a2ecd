"""Network helpers shared by the probers: addresses and their choice (addr), `host:port` targets
(hostport), TLS metrics (tls_info) and DNS record text (dns_text)."""
