"""The kzai_guard benchmark suite: ``python -m benchmarks`` (see ``docs/benchmarks.md``)."""
