"""Count a large batch once per block of dimensions instead of once per dimension.

Every row lands in one cell of every dimension, so adding n rows to d
dimensions with `np.bincount` costs n·d scattered adds per statistic.
Dimensions are small (a handful of groups each), so a few of them taken
together still have few joint cells: a block of dimensions is counted in
their joint space with n adds, and each dimension's cells are then sums over
that joint table, whose size does not depend on the batch. The projection
is a fixed cost, so only batches of a few thousand rows take this path
(`equiguard.engine.stats`).

The counts are the same integers either way; float sums are added in
another order, so they agree to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Block:
    """Some dimensions (columns of the cell rows) counted in their joint space."""

    columns: tuple[int, ...]
    radix: tuple[int, ...]  # a code is the sum of (cell - first cell) x radix over columns
    size: int  # joint codes
    start: int  # where the block's table begins among all tables
    length: int  # size x slots
    # How a code is computed from its sources, cell columns or codes of smaller
    # blocks: the sum of source x multiplier, minus shift. Largest multiplier
    # first, and no term for a source of one value (its digit is always 0).
    terms: tuple[tuple[int, int], ...]
    shift: int
    # For a block of smaller blocks: (inner block, radix) of each, in radix order.
    members: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class BlockPlan:
    """How rows are counted: the blocks, and where each joint slot lands."""

    blocks: tuple[Block, ...]
    slots: int  # slots per joint code
    table_length: int
    offsets: tuple[int, ...]  # each dimension's first cell
    sizes: tuple[int, ...]  # and its number of cells
    inner: BlockPlan | None = None  # the plan whose codes are this one's sources

    @classmethod
    def of_cells(
        cls, offsets: Sequence[int], sizes: Sequence[int], slots: int, max_slots: int
    ) -> BlockPlan:
        """Blocks of consecutive dimensions, coded from cell columns."""
        groups = _partition(sizes, max(1, max_slots // slots))
        blocks, start = [], 0
        for columns in groups:
            radix = _radix([sizes[c] for c in columns])
            size = math.prod(sizes[c] for c in columns)
            terms = _terms(columns, radix, [sizes[c] for c in columns])
            shift = sum(offsets[c] * r for c, r in terms)
            blocks.append(Block(tuple(columns), radix, size, start, size * slots, terms, shift))
            start += size * slots
        return cls(tuple(blocks), slots, start, tuple(offsets), tuple(sizes))

    @classmethod
    def of_blocks(
        cls, inner: BlockPlan, offsets: Sequence[int], sizes: Sequence[int], max_codes: int
    ) -> BlockPlan:
        """One slot per code; blocks are unions of inner's, coded from inner's codes."""
        groups = _partition([b.size for b in inner.blocks], max_codes)
        blocks, start = [], 0
        for members in groups:
            parts = [inner.blocks[m] for m in members]
            outer = _radix([b.size for b in parts])
            columns = tuple(c for b in parts for c in b.columns)
            radix = tuple(r * o for b, o in zip(parts, outer, strict=True) for r in b.radix)
            size = math.prod(b.size for b in parts)
            terms = _terms(members, outer, [b.size for b in parts])
            together = tuple(zip(members, outer, strict=True))
            blocks.append(Block(columns, radix, size, start, size, terms, 0, together))
            start += size
        return cls(tuple(blocks), 1, start, tuple(offsets), tuple(sizes), inner)

    def codes(self, sources: Sequence[np.ndarray], rows: int) -> list[np.ndarray]:
        """Each block's joint code per row, from its sources (see Block.terms).

        Arithmetic in place where it can be: on int64 each pass costs about as
        much as a fifth of a scattered add, and a block takes 2 per source.
        """
        out = []
        for block in self.blocks:
            if not block.terms:  # only dimensions of one cell: every row has code 0
                out.append(np.zeros(rows, np.int64))
                continue
            (first, multiplier), *rest = block.terms
            if multiplier == 1:  # the largest multiplier: a block of one source
                only = sources[first]
                out.append(only - block.shift if block.shift else only)
                continue
            code = sources[first] * multiplier
            for index, multiplier in rest:
                code += sources[index] * multiplier if multiplier != 1 else sources[index]
            if block.shift:
                code -= block.shift
            out.append(code)
        return out

    def project(self, tables: np.ndarray) -> np.ndarray:
        """Per (cell, slot) sums of the joint tables, shape (cells, slots), tables' dtype.

        A code is (outer, the dimension's cell, inner) in mixed radix, the
        dimension's own radix being the inner size, so its cells are the
        table summed over the outer and inner axes.
        """
        if self.inner is not None:
            return self._project_by_inner_codes(tables)
        out = np.zeros((sum(self.sizes), self.slots), tables.dtype)
        for block in self.blocks:
            table = tables[block.start : block.start + block.length]
            for column, inner in zip(block.columns, block.radix, strict=True):
                size = self.sizes[column]
                by_axis = table.reshape(block.size // (inner * size), size, inner, self.slots)
                cells = slice(self.offsets[column], self.offsets[column] + size)
                out[cells] += by_axis.sum(axis=(0, 2))
        return out

    @cached_property
    def code_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (code, cell) pair where a code, numbered across blocks, holds the cell."""
        codes, cells, start = [], [], 0
        for block in self.blocks:
            code = np.arange(block.size)
            for column, radix in zip(block.columns, block.radix, strict=True):
                codes.append(start + code)
                cells.append(self.offsets[column] + code // radix % self.sizes[column])
            start += block.size
        return np.concatenate(codes), np.concatenate(cells)

    def _project_by_inner_codes(self, tables: np.ndarray) -> np.ndarray:
        """Tables of inner codes, summed onto each inner block's codes first, and
        those onto the cells: a few small sums instead of one per dimension of
        a table of many axes."""
        assert self.inner is not None
        inner = self.inner
        starts = np.cumsum([0, *(b.size for b in inner.blocks)]).tolist()
        codes = np.zeros(starts[-1], tables.dtype)
        for block in self.blocks:
            table = tables[block.start : block.start + block.length]
            for member, radix in block.members:
                size = inner.blocks[member].size
                by_axis = table.reshape(block.size // (radix * size), size, radix)
                codes[starts[member] : starts[member] + size] += by_axis.sum(axis=(0, 2))
        # Scattered adds, not a matrix product: BLAS may start threads for one.
        code_of_pair, cell_of_pair = inner.code_cells
        out = np.zeros(sum(self.sizes), tables.dtype)
        np.add.at(out, cell_of_pair, codes[code_of_pair])
        return out[:, None]


def _terms(
    sources: Sequence[int], multipliers: Sequence[int], sizes: Sequence[int]
) -> tuple[tuple[int, int], ...]:
    """(source, multiplier) of the sources with more than one value, largest multiplier
    first: the first product is the code's own array and a multiplier of 1 adds in place."""
    kept = [(s, m) for s, m, size in zip(sources, multipliers, sizes, strict=True) if size > 1]
    return tuple(sorted(kept, key=lambda term: -term[1]))


def _radix(sizes: Sequence[int]) -> tuple[int, ...]:
    """Mixed-radix place values: the first part varies fastest."""
    out, step = [], 1
    for size in sizes:
        out.append(step)
        step *= size
    return tuple(out)


def _partition(sizes: Sequence[int], max_codes: int) -> list[list[int]]:
    """Parts packed into few groups whose joint size stays within max_codes.

    First fit, largest parts first: fewer groups means fewer passes over the rows.
    """
    groups: list[list[int]] = []
    products: list[int] = []
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        for g, product in enumerate(products):
            if product * sizes[index] <= max_codes:
                groups[g].append(index)
                products[g] *= sizes[index]
                break
        else:
            groups.append([index])
            products.append(sizes[index])
    return [sorted(group) for group in groups]
