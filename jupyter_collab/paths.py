"""One spelling per file: the canonical API path every permission decision is made on.

jupyter_server serves `a/../x`, `./x`, `%2E%2E` (decoded by Tornado before any handler
sees it) and paths through symlinks as the same file, while permission rules (`fnmatch`
globs, Hub shares) compare strings: a rule for `solutions/*` does not match
`public/../solutions/answer.ipynb`. So every decision (session, REST, room socket,
re-check, our authorizers) is made on the canonical path instead:

- the spelling is checked first: segments that are empty, `.` or `..`, backslashes and
  control characters are refused (`PathRefused`, 400) rather than resolved, so that one
  file never gets a second file id (and a second live room) through an alias;
- then, on a local file system, the path is resolved the way the operating system will
  open it: symlinks followed, and on case-insensitive file systems each segment compared
  with the case stored on disk. A path that leads outside the root is refused (404).
"""

from __future__ import annotations

import os
import unicodedata
from functools import cache
from pathlib import Path


class PathRefused(ValueError):
    """A path the server will not decide on; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_spelling(path: str) -> str:
    """`path` without one leading `/` (the contents API's form), if it is spelled canonically.

    Raises PathRefused (400) naming what is wrong.
    """
    if path.startswith("/"):
        path = path[1:]
    if path == "":
        return path  # the root folder
    if "\\" in path:
        raise PathRefused(400, f"path {path!r} contains a backslash; use '/' between folders")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in path):
        raise PathRefused(400, f"path {path!r} contains control or format characters")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            shown = segment or "an empty segment"
            raise PathRefused(400, f"path {path!r} is not canonical ({shown!r}); name the file directly")
    return path


@cache
def _case_insensitive(root: str) -> bool:
    """Whether the file system holding `root` ignores case (macOS, Windows defaults)."""
    probe = Path(root)
    flipped = Path(str(probe).swapcase())
    if str(flipped) == str(probe):
        return False
    try:
        return flipped.exists() and os.path.samefile(flipped, probe)
    except OSError:
        return False


def _case_on_disk(root: Path, relative: str) -> bool:
    """Whether every segment of `relative` is spelled as the directory lists it."""
    folder = root
    for segment in relative.split("/"):
        try:
            names = os.listdir(folder)
        except OSError:
            return True  # not there (yet): nothing to compare with
        if segment not in names:
            return False
        folder = folder / segment
    return True


def canonical_path(path: str, root: str | os.PathLike[str] | None) -> str:
    """The one API path of the file `path` names (see the module docstring).

    `root` is the contents manager's root directory on a local file system, or None for
    contents managers without one (then only the spelling is checked). A path that does
    not exist keeps its (checked) spelling: the caller answers 404 as for any missing file.
    """
    path = check_spelling(path)
    if root is None or path == "":
        return path
    root_path = Path(os.path.realpath(root))
    real = Path(os.path.realpath(root_path / path))
    try:
        relative = real.relative_to(root_path).as_posix()
    except ValueError:
        raise PathRefused(404, f"no file at {path!r}") from None
    if relative == ".":
        return ""
    if _case_insensitive(str(root_path)) and not _case_on_disk(root_path, relative):
        raise PathRefused(400, f"path {path!r} differs in case from the file on disk")
    return relative


def contents_root(contents_manager: object) -> str | None:
    """The root directory of a file-system contents manager, or None (e.g. a database one)."""
    root = getattr(contents_manager, "root_dir", None)
    return root if isinstance(root, str) and os.path.isdir(root) else None
