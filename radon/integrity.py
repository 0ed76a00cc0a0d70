"""File integrity and atomic writes, shared by checkpoints, tokenizers and artifacts (no torch).

Every RADON output is built in a temporary sibling folder (``.NAME.tmp-PID-XXXX``) and renamed into
place, so a crash never leaves a half-written checkpoint or artifact. Until the rename, the folder holds
``INCOMPLETE_MARKER``, which every loader refuses, so a folder left by a ``kill -9`` cannot be loaded
even by its path; the next run that writes the same output removes such folders when the process that
made them is gone. Every output records the sha256 of its files, and a
loader refuses a file whose hash does not match, naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from radon.errors import IntegrityError, RadonError

log = logging.getLogger(__name__)
CHUNK = 1 << 20
INCOMPLETE_MARKER = ".radon-incomplete"  # in a folder still being written; removed just before the rename


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def list_files(root: Path, exclude: Iterable[str] = ()) -> list[str]:
    """Relative POSIX paths of every file under ``root``, sorted, minus ``exclude`` and the incomplete marker."""
    skip = {*exclude, INCOMPLETE_MARKER}
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).as_posix() not in skip
    )


def hash_files(root: str | Path, names: Iterable[str]) -> dict[str, str]:
    root = Path(root)
    return {name: sha256_file(root / name) for name in names}


def check_complete(folder: str | Path) -> None:
    """Refuse a folder that a writer has not finished (``INCOMPLETE_MARKER``): a killed run left it."""
    if (Path(folder) / INCOMPLETE_MARKER).exists():
        raise IntegrityError(
            f"{folder}: half-written ({INCOMPLETE_MARKER} present): the export, quantize or save that wrote it "
            "did not finish. Delete it; the next run of the same command also removes it"
        )


def verify_files(root: str | Path, recorded: Mapping[str, str], what: str = "artifact") -> None:
    """Raise IntegrityError naming the first file that is missing or whose sha256 differs."""
    root = Path(root)
    check_complete(root)
    for name, expected in recorded.items():
        parts = PurePosixPath(name).parts
        if not parts or PurePosixPath(name).is_absolute() or ".." in parts or "\\" in name:
            raise IntegrityError(f"{root}: the {what}'s hashes name {name!r}, a path outside its folder")
        path = root / name
        if not path.is_file():
            raise IntegrityError(f"{path}: missing from the {what} (recorded in its hashes)")
        actual = sha256_file(path)
        if actual != expected:
            raise IntegrityError(
                f"{path}: sha256 mismatch ({actual[:12]}... != recorded {expected[:12]}...); "
                f"the file is corrupted or was changed after the {what} was written"
            )


def digest_of(hashes: Mapping[str, str]) -> str:
    """One sha256 for a set of files: the hash of their sorted ``name sha`` lines."""
    lines = "".join(f"{name} {hashes[name]}\n" for name in sorted(hashes))
    return hashlib.sha256(lines.encode()).hexdigest()


def read_json(path: str | Path, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        check_complete(path.parent)
        raise IntegrityError(f"{path}: missing ({what})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{path}: malformed JSON ({what}): {exc}") from None


def write_json(path: str | Path, data: Any) -> None:
    Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale(out: Path) -> list[Path]:
    """Remove ``out``'s temporary and replaced siblings (``.NAME.tmp-PID-*``, ``.NAME.old-PID``) whose
    process is gone: what a killed run left. Returns the folders removed."""
    removed = []
    for kind in ("tmp", "old"):
        for path in out.parent.glob(f".{out.name}.{kind}-*"):
            pid = path.name[len(f".{out.name}.{kind}-") :].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    if removed:
        log.info(
            "removed %d stale folder(s) left by killed runs: %s", len(removed), ", ".join(map(str, removed))
        )
    return removed


@contextmanager
def atomic_directory(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; rename it to ``out`` only if the block succeeds.

    The folder holds ``INCOMPLETE_MARKER`` until just before the rename. Stale siblings from killed runs
    are removed first (``remove_stale``).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise RadonError(f"{out}: already exists (use --force to replace it)")
    if out.exists() and not out.is_dir():
        raise RadonError(f"{out}: exists and is not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
        (tmp / INCOMPLETE_MARKER).write_text(f"pid {os.getpid()}: being written; not loadable\n")
    except OSError as exc:
        raise RadonError(f"{out.parent}: cannot write here ({exc.strerror or exc})") from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish_directory(tmp, out)


def publish_directory(tmp: Path, out: Path) -> None:
    """Drop the incomplete marker from ``tmp`` and rename it to ``out``, replacing an older ``out``."""
    (tmp / INCOMPLETE_MARKER).unlink()
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
    # mkdtemp makes a 0700 folder; give the result the usual permissions
    os.chmod(out, 0o755)
