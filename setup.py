"""Build settings that pyproject.toml cannot hold: the optional C extensions.

``kzai_guard.audit._lines``, the audit log's line encoder, links OpenSSL's libcrypto (already
loaded by Python's hashlib), as does ``kzai_guard._digest`` (an explanation's SHA-256);
``kzai_guard._ids`` makes decision ids. Where one cannot be built
(no C compiler, no OpenSSL headers) the install still succeeds and its Python twin does the
work: the same bytes for the lines, the same kind of id.
"""

from setuptools import Extension, setup

WARNINGS = ["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]

setup(
    ext_modules=[
        Extension(
            "kzai_guard.audit._lines",
            ["kzai_guard/audit/_lines.c"],
            libraries=["crypto"],
            extra_compile_args=WARNINGS,
            optional=True,
        ),
        Extension(
            "kzai_guard._digest",
            ["kzai_guard/_digest.c"],
            libraries=["crypto"],
            extra_compile_args=WARNINGS,
            optional=True,
        ),
        Extension(
            "kzai_guard._ids",
            ["kzai_guard/_ids.c"],
            extra_compile_args=WARNINGS,
            optional=True,
        ),
    ]
)
