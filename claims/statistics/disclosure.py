"""Small cells: no figure about fewer than ``THRESHOLD`` people leaves the server.

Primary suppression hides every cell of fewer than 10 distinct patients.  Complementary
suppression then hides, in every line of the table (the cells sharing all coordinates but one:
the strata of a one-dimension table, each row and each column of a two-dimension one), the
smallest other cell wherever exactly one cell of the line is hidden — or its value would follow
from the line's total minus the cells shown.  Repeated until no line has a lone hidden cell.
The whole (total) cell is hidden like any other when it has fewer than 10 people.
"""
from __future__ import annotations

from collections import defaultdict

THRESHOLD = 10


def hidden_cells(cells: dict[tuple, int]) -> set[tuple]:
    """The keys to suppress, from each cell's number of people."""
    hidden = {k for k, people in cells.items() if people < THRESHOLD}
    dims = len(next(iter(cells), ()))
    changed = True
    while changed:
        changed = False
        for axis in range(dims):
            lines: dict[tuple, list[tuple]] = defaultdict(list)
            for key in cells:
                lines[key[:axis] + key[axis + 1:]].append(key)
            for members in lines.values():
                shown = [k for k in members if k not in hidden]
                if len(members) - len(shown) == 1 and shown:
                    hidden.add(min(shown, key=lambda k: (cells[k], k)))
                    changed = True
    return hidden
