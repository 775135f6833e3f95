"""interp/interventions.py exactly: sites, targets, scale choice, outcomes (docs/mutation.md)."""
