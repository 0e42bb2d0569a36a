"""`emoconf bench`: performance figures on this machine, each beside a reference measured in the same run
(`harness` runs the parts, one module each: `training` with `early_stopped_fit`, `serving`, `extraction`,
`protocol`; the figures and their targets are documented in docs/performance.md)."""
