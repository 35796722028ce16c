"""hubble-dns-watcher: find DNS exfiltration in Cilium Hubble DNS metrics."""

__version__ = "0.1.0"
