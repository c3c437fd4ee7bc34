"""The command line's larger commands (starter.py dispatches): demo, simulated cohort, templates."""
