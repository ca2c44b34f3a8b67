"""Write result files atomically, so an interrupted run never leaves a truncated JSON behind.

pytest-benchmark writes its JSON straight into the final path (``FileStorage.save`` and
``BenchmarkSession.save_json``); a Ctrl-C or a full disk half-way leaves a file that
``pytest-benchmark compare`` then fails on. ``install()`` swaps both for versions that write a
temporary file beside the target and rename it into place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pytest_benchmark.session import BenchmarkSession
from pytest_benchmark.storage.file import FileStorage
from pytest_benchmark.utils import safe_dumps


def write_atomically(path: Path, data: bytes, overwrite: bool = True) -> None:
    """Readers see the old file or the whole new one, never a part (rename is atomic on POSIX).

    With ``overwrite=False`` an existing file is kept and FileExistsError raised: the new one is
    linked into place, which, unlike a rename, refuses a taken name in the same atomic step.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it private; results are for sharing
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    Path(temporary).unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _encode(output_json: dict) -> bytes:
    return safe_dumps(output_json, ensure_ascii=True, indent=4).encode()


def _storage_save(self: FileStorage, output_json: dict, save: str) -> None:
    output_file = self.get(f"{self._next_num}_{save}.json")
    # Upstream asserts the numbered file does not exist yet: a run never replaces another.
    write_atomically(output_file, _encode(output_json), overwrite=False)
    self.logger.info(f"Saved benchmark data in: {output_file}")


def _session_save_json(self: BenchmarkSession, output_json: dict) -> None:
    write_atomically(self.json, _encode(output_json))
    self.logger.info(f"Wrote benchmark data in: {self.json}", purple=True)


def install() -> None:
    FileStorage.save = _storage_save
    BenchmarkSession.save_json = _session_save_json
