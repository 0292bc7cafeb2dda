"""The usage benchmark: ``make bench-usage`` (load, daily aggregation, billing snapshot
against a bare scan of the same rows). See README.md in this folder."""
