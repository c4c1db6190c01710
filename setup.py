"""Build settings that pyproject.toml cannot hold: the optional C line encoder.

``kzai_guard.audit._lines`` links OpenSSL's libcrypto (already loaded by Python's hashlib).
Where it cannot be built (no C compiler, no OpenSSL headers) the install still succeeds and
the audit log encodes its lines in Python, byte for byte the same.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "kzai_guard.audit._lines",
            ["kzai_guard/audit/_lines.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
            optional=True,
        )
    ]
)
