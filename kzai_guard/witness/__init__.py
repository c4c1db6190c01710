"""A C2SP ``tlog-witness``: cosigns a log's checkpoints once they are proved consistent.

- :mod:`kzai_guard.witness.protocol`: the ``add-checkpoint`` wire format (both ends).
- :mod:`kzai_guard.witness.state`: the decision on one request (pure).
- :mod:`kzai_guard.witness.store`: the durable state (SQLite, 0600).
- :mod:`kzai_guard.witness.app`: the ASGI app.
- :mod:`kzai_guard.witness.config`: the witness's configuration file.

Run one with ``kzai-guard witness serve --config witness.toml``.
"""
