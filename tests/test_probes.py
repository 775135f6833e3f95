"""interp/probes.py exactly: labels, probe maps beside their controls, site choice, the ridge fit (docs/mutation.md)."""
