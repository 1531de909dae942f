"""Outputs that appear whole or not at all (torch-free, so commands check ``--out`` first).

A command that writes ``--out`` opens :func:`staged_output` before it does any work. That checks
the path at once, refusing in one line (a :class:`~dualgate_solo.validation.UsageError` naming the
option, the value and what is allowed):

* a path that exists, unless ``--overwrite`` is given (then the old output is replaced whole, and
  only once the new one is complete);
* a folder where a file is asked for (or the reverse), a file ending that is not allowed, a path
  under a file;
* a place that cannot be written: the staging folder, ``.<name>.partial-*`` beside the target, is
  created right away, so ``--out /proc/x`` fails before the work, as root too.

The command writes into the staging folder; when the block ends normally the result is moved into
place with renames in the same folder. On any error the staging folder is removed (with the
parent folders this created), so nothing half-written is left and an earlier output is untouched.
Ctrl-C becomes :class:`Interrupted`, whose message says what was kept. ``~`` is expanded.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dualgate_solo.validation import UsageError


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a staged output; the message says what was kept (exit status 130)."""


class StagedOutput:
    """A checked ``--out`` and the staging place its contents are written to first.

    Attributes:
        target: the final path (``~`` expanded).
        path: where the command writes: the staging folder itself for a folder output, the file
            of the target's name inside it for a file output.
    """

    def __init__(
        self,
        target: Path,
        *,
        overwrite: bool,
        directory: bool,
        suffixes: tuple[str, ...] = (),
        option: str = "--out",
    ) -> None:
        self.target = Path(target).expanduser()
        self.option = option
        self.directory = directory
        self.existed = self.target.exists()
        where = f"{option}={str(self.target)!r}"
        check_output(self.target, directory=directory, suffixes=suffixes, option=option)
        if self.existed and not overwrite:
            kind = "folder" if directory else "file"
            raise UsageError(
                f"{where} already exists; allowed values: a new path, or add --overwrite to "
                f"replace the {kind} whole once the new output is complete"
            )
        parent = self.target.absolute().parent
        missing = [p for p in (parent, *parent.parents) if not p.exists()]
        self._created = missing[-1] if missing else None
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self._staging = Path(tempfile.mkdtemp(prefix=self._prefix("partial"), dir=parent))
        except OSError as error:
            self._remove_created()
            raise UsageError(
                f"{where} cannot be written ({error.strerror or error}); allowed values: a path "
                "in a folder you can write to"
            ) from None
        self.path = self._staging if directory else self._staging / self.target.name

    def relocate(self, value: Any) -> Any:
        """``value`` with every string naming a staged path rewritten to its final place
        (dicts and lists walked), for summaries that record the files they wrote."""
        if isinstance(value, dict):
            return {key: self.relocate(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.relocate(item) for item in value]
        if isinstance(value, str) and value.startswith(str(self.path)):
            return str(self.target) + value[len(str(self.path)) :]
        return value

    def publish(self) -> None:
        """Move the staged output into place (an existing one is replaced whole); Ctrl-C is held
        back for the few renames this takes."""
        with _interrupts_held():
            if not self.directory:
                os.replace(self.path, self.target)
                self._staging.rmdir()
                return
            old = None
            if self.target.exists():
                old = Path(tempfile.mkdtemp(prefix=self._prefix("old"), dir=self._staging.parent))
                os.replace(self.target, old / self.target.name)
            try:
                os.replace(self._staging, self.target)
            except OSError:
                if old is not None:
                    os.replace(old / self.target.name, self.target)
                raise
            finally:
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        """Remove the staging folder and the parent folders this created."""
        shutil.rmtree(self._staging, ignore_errors=True)
        self._remove_created()

    def kept(self) -> str:
        """What an interrupted run leaves: the earlier output as it was, or nothing."""
        where = f"{self.option}={str(self.target)!r}"
        if self.existed:
            return f"{where} was left as it was, nothing half-written"
        return f"nothing was written ({where} not created)"

    def _prefix(self, kind: str) -> str:
        return f".{self.target.name}.{kind}-"

    def _remove_created(self) -> None:
        if self._created is None:
            return
        folder = self.target.absolute().parent
        while True:
            try:
                folder.rmdir()
            except OSError:
                return
            if folder == self._created:
                return
            folder = folder.parent


def check_output(
    path: Path, *, directory: bool, suffixes: tuple[str, ...] = (), option: str = "--out"
) -> None:
    """``UsageError`` when ``path`` is a file where a folder is asked for (or the reverse), has an
    ending not in ``suffixes`` (files only), or lies under a file; creates nothing."""
    where = f"{option}={str(path)!r}"
    if directory and path.exists() and not path.is_dir():
        raise UsageError(f"{where} is a file; allowed values: a directory")
    if not directory:
        if path.is_dir():
            raise UsageError(f"{where} is a directory; allowed values: a file name")
        if suffixes and path.suffix.lower() not in suffixes:
            raise UsageError(
                f"{where} is invalid; allowed values: a file ending in {', '.join(suffixes)}"
            )
    parent = path.absolute().parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UsageError(f"{where} lies under the file {str(existing)!r}")


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ignore Ctrl-C inside the block (main thread only; elsewhere a no-op)."""
    with _sigint(signal.SIG_IGN):
        yield


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C back until the block ends, then raise it.

    For heavy imports (torch): a KeyboardInterrupt in the middle of one leaves modules
    half-initialised, after which the next import fails with a long traceback or the interrupt is
    lost and the command runs on.
    """
    caught: list[int] = []
    with _sigint(lambda number, frame: caught.append(number)):
        yield
    if caught:
        raise KeyboardInterrupt


@contextmanager
def _sigint(handler: Any) -> Iterator[None]:
    """``handler`` for SIGINT inside the block, unless Ctrl-C is ignored already (a background
    job) or this is not the main thread (where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    ):
        yield
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def staged_output(
    target: Path,
    *,
    overwrite: bool,
    directory: bool = True,
    suffixes: tuple[str, ...] = (),
    option: str = "--out",
) -> Iterator[StagedOutput]:
    """Check ``target`` now, yield its :class:`StagedOutput`, publish it when the block ends.

    Args:
        target: the ``--out`` value.
        overwrite: replace an existing ``target`` (else it is refused).
        directory: ``target`` is a folder (else a file).
        suffixes: allowed file endings (files only).
        option: the option named in messages.

    Raises:
        UsageError: ``target`` cannot be written as asked (nothing is created).
        Interrupted: Ctrl-C inside the block (the staged output is removed).
    """
    stage = StagedOutput(
        target, overwrite=overwrite, directory=directory, suffixes=suffixes, option=option
    )
    try:
        yield stage
    except KeyboardInterrupt:
        stage.discard()
        raise Interrupted(stage.kept()) from None
    except BaseException:
        stage.discard()
        raise
    try:
        stage.publish()
    except OSError as error:  # e.g. another process created the target meanwhile
        stage.discard()
        raise UsageError(
            f"{option}={str(stage.target)!r} could not be put in place ({error}); allowed "
            "values: a path no other process writes to"
        ) from None
