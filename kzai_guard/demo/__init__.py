"""The demo: a FastAPI loan-decision service guarded by kzai_guard, and a walk through it."""
