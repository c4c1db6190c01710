"""The audit trail: records, sinks and the signed, tamper-evident log."""
