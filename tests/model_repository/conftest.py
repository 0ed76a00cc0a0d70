"""The Triton tests' fixtures, shared with the Triton probes: ``tests/triton_testing.py``."""

from triton_testing import (  # noqa: F401 - fixtures, found by pytest by name
    free_port,
    repository,
    server,
    server_install,
    text_artifact,
    text_gen,
    triton_root,
)
