"""Count a large batch once per block of dimensions instead of once per dimension.

Every row lands in one cell of every dimension, so adding n rows to d
dimensions with `np.bincount` costs n·d scattered adds per statistic.
Dimensions are small (a handful of groups each), so a few of them taken
together still have few joint cells: a block of dimensions is counted in
their joint space with n adds, and each dimension's cells are then sums over
that joint table, whose size does not depend on the batch. The projection
is a fixed cost, so only batches of a few thousand rows take this path
(`BlockPlan.worth_it`).

The counts are the same integers either way; float sums are added in
another order, so they agree to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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
    # blocks: the sum of source x multiplier, minus shift.
    terms: tuple[tuple[int, int], ...]
    shift: int


@dataclass(frozen=True)
class BlockPlan:
    """How rows are counted: the blocks, and where each joint slot lands."""

    blocks: tuple[Block, ...]
    slots: int  # slots per joint code
    table_length: int
    offsets: tuple[int, ...]  # each dimension's first cell
    sizes: tuple[int, ...]  # and its number of cells

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
            terms = tuple(zip(columns, radix, strict=True))
            shift = sum(offsets[c] * r for c, r in terms)
            blocks.append(Block(tuple(columns), radix, size, start, size * slots, terms, shift))
            start += size * slots
        return cls._with_projection(blocks, offsets, sizes, slots, start)

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
            terms = tuple(zip(members, outer, strict=True))
            blocks.append(Block(columns, radix, size, start, size, terms, 0))
            start += size
        return cls._with_projection(blocks, offsets, sizes, 1, start)

    @classmethod
    def _with_projection(
        cls,
        blocks: list[Block],
        offsets: Sequence[int],
        sizes: Sequence[int],
        slots: int,
        table_length: int,
    ) -> BlockPlan:
        return cls(tuple(blocks), slots, table_length, tuple(offsets), tuple(sizes))

    def worth_it(self, rows: int, dimensions: int) -> bool:
        """Whether a batch saves more scattered adds than the projection costs."""
        projected = sum(block.length * len(block.columns) for block in self.blocks)
        return rows * dimensions > 2 * projected

    def codes(self, sources: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Each block's joint code per row, from its sources (see Block.terms)."""
        out = []
        for block in self.blocks:
            (first, multiplier), *rest = block.terms
            code = sources[first] * multiplier
            for source, multiplier in rest:
                code += sources[source] * multiplier
            if block.shift:
                code -= block.shift
            out.append(code)
        return out

    def project(self, tables: np.ndarray) -> np.ndarray:
        """Per (cell, slot) sums of the joint tables, shape (cells, slots), tables' dtype.

        A block's table is an array with one axis per dimension (the last
        dimension's axis first, since the first varies fastest in a code), so a
        dimension's cells are the table summed over the other axes.
        """
        out = np.zeros((sum(self.sizes), self.slots), tables.dtype)
        for block in self.blocks:
            shape = [self.sizes[c] for c in reversed(block.columns)]
            table = tables[block.start : block.start + block.length].reshape(*shape, self.slots)
            axes = len(block.columns)
            for i, column in enumerate(block.columns):
                others = tuple(a for a in range(axes) if a != axes - 1 - i)
                cells = slice(self.offsets[column], self.offsets[column] + self.sizes[column])
                out[cells] += table.sum(axis=others) if others else table
        return out


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
