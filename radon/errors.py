"""The exceptions RADON raises for problems a user can fix.

The CLI turns each into one line on stderr and a non-zero exit; library callers catch them by type.
Every message names the thing at fault: the key, the file, the flag, the value.
"""

from __future__ import annotations


class RadonError(Exception):
    """Base class: a problem with the user's input or environment, reported without a traceback."""

    exit_code = 2


class ConfigError(RadonError, ValueError):
    """A model or generation config that is malformed, has an unknown key, or contradicts itself."""


class IntegrityError(RadonError):
    """A file whose recorded sha256 does not match, a truncated file, or a missing part of an artifact."""


class MissingExtraError(RadonError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


class QualityGateError(RadonError):
    """A parity or quality threshold was not met; the message names the metric and the threshold."""

    exit_code = 1
