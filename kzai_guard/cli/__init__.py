"""The ``kzai-guard`` command line."""
