"""Text edits on pycrdt `Text` and a line-based three-way merge.

pycrdt addresses text by UTF-8 byte offsets while Python strings (and JSON) count code
points, and an offset inside a multi-byte character panics. Every server-side text
edit goes through `replace_text`, which computes the change on code points and
converts to byte offsets, touching only the span that differs so that remote
cursors outside it stay where they are.
"""

from __future__ import annotations

from difflib import SequenceMatcher

from pycrdt import Text


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def changed_span(old: str, new: str) -> tuple[int, int, int]:
    """Return (prefix, old_end, new_end): `old[prefix:old_end]` becomes `new[prefix:new_end]`."""
    limit = min(len(old), len(new))
    prefix = 0
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    return prefix, len(old) - suffix, len(new) - suffix


def replace_text(ytext: Text, new: str) -> bool:
    """Make `ytext` read `new` with one minimal edit; returns whether anything changed."""
    old = str(ytext)
    if old == new:
        return False
    prefix, old_end, new_end = changed_span(old, new)
    start = _utf8_len(old[:prefix])
    removed = _utf8_len(old[prefix:old_end])
    if removed:
        del ytext[start : start + removed]
    if new_end > prefix:
        ytext.insert(start, new[prefix:new_end])
    return True


def _hunks(base: list[str], other: list[str]) -> list[tuple[int, int, list[str]]]:
    """Changed regions of `other` against `base` as (base_start, base_end, replacement)."""
    matcher = SequenceMatcher(a=base, b=other, autojunk=False)
    return [(i1, i2, other[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def merge3(base: str, ours: str, theirs: str) -> str:
    """Three-way merge of text by lines.

    Changes from both sides are kept where they touch different lines; where both sides
    changed the same lines, `theirs` wins (callers pass the incoming side as `theirs`:
    the file on disk, or a reconnecting client's copy).
    """
    if ours in (base, theirs):
        return theirs
    if theirs == base:
        return ours
    base_lines = base.splitlines(keepends=True)
    ours_hunks = _hunks(base_lines, ours.splitlines(keepends=True))
    theirs_hunks = _hunks(base_lines, theirs.splitlines(keepends=True))
    # Walk both hunk lists in base order; overlapping hunks form a conflict region.
    tagged = sorted(
        [(s, e, rep, "ours") for s, e, rep in ours_hunks]
        + [(s, e, rep, "theirs") for s, e, rep in theirs_hunks],
        key=lambda h: (h[0], h[1]),
    )
    result: list[str] = []
    cursor = 0
    index = 0
    while index < len(tagged):
        start, end, replacement, side = tagged[index]
        group = [tagged[index]]
        index += 1
        # Pure insertions at the same point, or ranges that overlap, are one region.
        while index < len(tagged) and (
            tagged[index][0] < end or (tagged[index][0] == start == end == tagged[index][1])
        ):
            group.append(tagged[index])
            end = max(end, tagged[index][1])
            index += 1
        result.extend(base_lines[cursor:start])
        sides = {h[3] for h in group}
        if sides == {"ours"} or sides == {"theirs"}:
            result.extend(line for h in group for line in h[2])
        else:
            # Conflict: take their version of the whole region.
            region_start = start
            pieces: list[str] = []
            pos = region_start
            for h_start, h_end, rep, h_side in group:
                if h_side != "theirs":
                    continue
                pieces.extend(base_lines[pos:h_start])
                pieces.extend(rep)
                pos = h_end
            pieces.extend(base_lines[pos:end])
            result.extend(pieces)
        cursor = max(cursor, end)
    result.extend(base_lines[cursor:])
    return "".join(result)


def replace_tail(ytext: Text, old: str, new: str, offset: int = 0) -> bool:
    """Turn the text after UTF-8 byte `offset` of `ytext` from `old` into `new` by keeping
    their common prefix and replacing everything after it, to the end.

    Unlike `replace_text`, the edit always reaches the end of the text: JupyterLab applies a
    stream output's text event as "remove the last n characters, then append", whatever the
    retain (`CodeCellModel._onSharedModelChanged`), so an edit that stops short of the end
    would be misapplied by every JupyterLab peer. `old` must be the text's current content
    after `offset`; the caller knows it (the output mirror), which saves reading a long
    output back. The prefix is found on code points, so no character is ever split.
    """
    if old == new:
        return False
    low, high = 0, min(len(old), len(new))
    while low < high:  # the longest common prefix, by halving: slices compare in C
        middle = (low + high + 1) // 2
        if old[:middle] == new[:middle]:
            low = middle
        else:
            high = middle - 1
    start = offset + _utf8_len(old[:low])
    removed = _utf8_len(old) - _utf8_len(old[:low])
    if removed:
        del ytext[start : start + removed]
    if low < len(new):
        ytext.insert(start, new[low:])
    return True
