"""The pure core: policies and facts in, a verdict out.

Nothing here imports a web framework, a database driver or OpenTelemetry, and nothing does I/O.
"""
