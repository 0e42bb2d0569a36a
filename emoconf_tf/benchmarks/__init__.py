"""`emoconf bench`: performance figures on this machine, each beside a reference measured in the same run
(`harness`; the figures and their targets are documented in docs/performance.md)."""
