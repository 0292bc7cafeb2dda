"""The gateway benchmark: ``make bench-gateway`` (throughput, latency) and
``make bench-gateway-soak`` (1,000 held streams). See README.md in this folder."""
