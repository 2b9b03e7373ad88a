"""Byte-level reading of access-log chunks with numpy.

A chunk is a run of complete lines as UTF-8 bytes. One numpy pass finds the
offsets of its delimiters: quotes, `!`, and every byte outside printable
ASCII, newlines included. Another finds its spaces. A line in Istio's TEXT
format has exactly 14 delimiters before its newline, all quotes, and a fixed
number of spaces between some of them. `text_lines` checks those counts, the
time, and the gaps between spaces, and takes the byte range of every field
the summary needs straight from the offsets. Fields become Arrow string views
into the chunk, so no field is copied before it is hashed.

So the check accepts a subset of the lines that `logscan.TEXT_PATTERN`
matches: printable ASCII without `!` and a response code of one to three
digits. The regular expressions and the tolerant parser read every other
line, and `text_fields` finds the fields of the other lines that the pattern
matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

NEWLINE = ord("\n")
SPACE = ord(" ")
QUOTE = ord('"')
# Zero bytes after the last newline, so that fixed-width reads near the end stay in the buffer.
_PADDING = 32
# Delimiters are the bytes below `#` (controls, `!` and the quote) and above `~`, but not the space.
_FIRST_PLAIN = ord("#")
_LAST_PLAIN = ord("~")

# Quotes on a line in Istio's TEXT format: the request line and six quoted fields.
TEXT_QUOTES = 14
# Structural spaces of a TEXT line. The first eight follow `[TIME]`, separate
# `METHOD PATH PROTOCOL`, and surround `CODE FLAGS DETAILS TERMINATION_DETAILS`.
# The last eight follow the request id and the authority, and separate
# `CLUSTER UPSTREAM_LOCAL DOWNSTREAM_LOCAL DOWNSTREAM_REMOTE SNI ROUTE`.
# Five more surround the byte and time counts after the transport failure reason.
_HEAD_SPACES = 8
_TAIL_SPACES = 8
_SIZE_SPACES = 5
# Quotes 5 to 12 close and open quoted fields separated by one space.
_SEPARATED_QUOTES = (5, 7, 9, 11)

# `YYYY-MM-DDTHH:MM:SS` after the `[`: the lowest and highest byte at each place.
_TIME_LOW = np.frombuffer(b"0000-00-00T00:00:00", np.uint8)
_TIME_HIGH = np.frombuffer(b"9999-99-99T99:99:59", np.uint8)
_TIME_SPAN = _TIME_HIGH - _TIME_LOW
_MAX_FRACTION = 9
_MAX_CODE_DIGITS = 3
_VIEW_INLINE = 12  # a string view stores values up to this many bytes inline


@dataclass(frozen=True)
class Chunk:
    """Offsets of the lines, delimiters and spaces of a chunk.

    `data` is the chunk, a newline after its last line and zero padding, and
    `buffer` is the same bytes as a numpy array. Line `i` is
    `data[starts[i]:ends[i]]`, and `ends[i]` is its newline. Its delimiters are
    `delimiters[first_delimiter[i]:first_delimiter[i] + delimiter_count[i]]`.
    """

    data: bytes
    buffer: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    delimiters: np.ndarray
    first_delimiter: np.ndarray
    delimiter_count: np.ndarray
    spaces: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    def line(self, index: int) -> str:
        return self.data[self.starts[index]:self.ends[index]].decode("utf-8")


def read_chunk(data: bytes) -> Chunk:
    """Find the lines, delimiters and spaces of `data` (lines split at `\\n` only)."""
    body = data + b"\n" + bytes(_PADDING)
    buffer = np.frombuffer(body, np.uint8)
    is_space = buffer == SPACE
    shifted = np.subtract(buffer, np.uint8(_FIRST_PLAIN))
    outside = np.greater(shifted, np.uint8(_LAST_PLAIN - _FIRST_PLAIN), out=shifted.view(bool))
    # Every space is outside the plain range, so this drops exactly the spaces.
    np.logical_xor(outside, is_space, out=outside)
    delimiters = np.flatnonzero(outside)
    newlines = np.flatnonzero(buffer[delimiters] == NEWLINE)
    ends = delimiters[newlines]
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    first_delimiter = np.empty_like(newlines)
    first_delimiter[0] = 0
    first_delimiter[1:] = newlines[:-1] + 1
    return Chunk(
        data=body,
        buffer=buffer,
        starts=starts,
        ends=ends,
        delimiters=delimiters,
        first_delimiter=first_delimiter,
        delimiter_count=newlines - first_delimiter,
        spaces=np.flatnonzero(is_space),
    )


@dataclass(frozen=True)
class TextFields:
    """Byte ranges `(start, end)` of the fields of TEXT lines, one element per line.

    `outcome` is `CODE FLAGS DETAILS`, three tokens with single spaces.
    """

    start: np.ndarray  # offset of the `[` that opens the line
    outcome: tuple[np.ndarray, np.ndarray]
    path: tuple[np.ndarray, np.ndarray]
    authority: tuple[np.ndarray, np.ndarray]
    upstream_host: tuple[np.ndarray, np.ndarray]
    upstream_cluster: tuple[np.ndarray, np.ndarray]
    downstream_remote: tuple[np.ndarray, np.ndarray]
    route: tuple[np.ndarray, np.ndarray]

    _RANGES = ("outcome", "path", "authority", "upstream_host", "upstream_cluster",
               "downstream_remote", "route")

    def select(self, rows: np.ndarray) -> TextFields:
        return TextFields(self.start[rows], *(
            (getattr(self, name)[0][rows], getattr(self, name)[1][rows]) for name in self._RANGES))

    def join(self, other: TextFields, order: np.ndarray) -> TextFields:
        """Return these fields followed by `other`'s, then taken in `order`."""
        def both(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
            return np.concatenate((mine, theirs))[order]

        return TextFields(both(self.start, other.start), *(
            (both(getattr(self, name)[0], getattr(other, name)[0]),
             both(getattr(self, name)[1], getattr(other, name)[1])) for name in self._RANGES))


def text_lines(chunk: Chunk) -> tuple[np.ndarray, TextFields]:
    """Find the lines that fit Istio's TEXT format (the subset the module names).

    Returns their indices and their fields.
    """
    buffer = chunk.buffer
    spaces = chunk.spaces
    candidates = np.flatnonzero(chunk.delimiter_count == TEXT_QUOTES)
    quotes = chunk.delimiters[chunk.first_delimiter[candidates, None] + np.arange(TEXT_QUOTES)]
    ok = np.all(buffer[quotes] == QUOTE, axis=1)
    start = chunk.starts[candidates]
    end = chunk.ends[candidates]

    # The spaces of a line are spaces[first:last]. Quoted free text may hold
    # spaces, so the five after the transport failure reason are found by search.
    bounds = np.searchsorted(spaces, np.column_stack((start, end, quotes[:, 3])).ravel())
    first, last, after_reason = bounds.reshape(-1, 3).T
    ok &= last - first >= _HEAD_SPACES + _TAIL_SPACES + _SIZE_SPACES
    head = _take(spaces, first[:, None] + np.arange(_HEAD_SPACES))
    tail = _take(spaces, last[:, None] - _TAIL_SPACES + np.arange(_TAIL_SPACES))
    sizes = _take(spaces, after_reason[:, None] + np.arange(_SIZE_SPACES + 1))

    # `[TIME] "METHOD PATH PROTOCOL" CODE FLAGS DETAILS TERMINATION_DETAILS "`
    ok &= head[:, 0] == quotes[:, 0] - 1
    ok &= (head[:, 1] > quotes[:, 0]) & (head[:, 2] < quotes[:, 1])
    ok &= head[:, 3] == quotes[:, 1] + 1
    ok &= head[:, 7] == quotes[:, 2] - 1
    # `" BYTES_RECEIVED BYTES_SENT DURATION SERVICE_TIME "`, and no sixth space before the quote.
    ok &= sizes[:, 0] == quotes[:, 3] + 1
    ok &= sizes[:, 4] == quotes[:, 4] - 1
    ok &= sizes[:, 5] > quotes[:, 4]
    # `"REQUEST_ID" "AUTHORITY" "HOST" CLUSTER ... ROUTE`, with no space in authority or host.
    ok &= tail[:, 0] == quotes[:, 9] + 1
    ok &= tail[:, 1] == quotes[:, 11] + 1
    ok &= tail[:, 2] == quotes[:, 13] + 1
    for closing in _SEPARATED_QUOTES:
        ok &= quotes[:, closing + 1] - quotes[:, closing] == 2
        ok &= buffer[quotes[:, closing] + 1] == SPACE
    # Tokens are not empty.
    ok &= np.all(np.diff(np.column_stack((quotes[:, 0], head[:, 1:3], quotes[:, 1])), axis=1) >= 2,
                 axis=1)
    ok &= np.all(np.diff(head[:, 3:], axis=1) >= 2, axis=1)
    ok &= np.all(np.diff(sizes[:, :5], axis=1) >= 2, axis=1)
    ok &= np.all(np.diff(np.column_stack((tail[:, 2:], end)), axis=1) >= 2, axis=1)
    ok &= _time_fits(buffer, start, quotes[:, 0] - 1)
    ok &= _code_fits(buffer, head[:, 3] + 1, head[:, 4])

    rows = candidates[ok]
    quotes, head, tail, end = quotes[ok], head[ok], tail[ok], end[ok]
    fields = TextFields(
        start=start[ok],
        outcome=(head[:, 3] + 1, head[:, 6]),
        path=(head[:, 1] + 1, head[:, 2]),
        authority=(quotes[:, 10] + 1, quotes[:, 11]),
        upstream_host=(quotes[:, 12] + 1, quotes[:, 13]),
        upstream_cluster=(tail[:, 2] + 1, tail[:, 3]),
        downstream_remote=(tail[:, 5] + 1, tail[:, 6]),
        route=(tail[:, 7] + 1, end),
    )
    return rows, fields


def _take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Index `values`, clipping indices of lines that already failed a check."""
    return values[np.clip(index, 0, len(values) - 1)]


def _time_fits(buffer: np.ndarray, start: np.ndarray, after_time: np.ndarray) -> np.ndarray:
    """Check `[YYYY-MM-DDTHH:MM:SS(.fraction)Z]` from `start` to the space at `after_time`."""
    ok = buffer[start] == ord("[")
    width = after_time - start  # 22 without a fraction, 23 + digits with one
    ok &= (width == 22) | ((width >= 24) & (width <= 23 + _MAX_FRACTION))
    ok &= buffer[after_time - 1] == ord("]")
    ok &= buffer[after_time - 2] == ord("Z")

    # Every read below stays inside the line or the padding after the chunk.
    windows = np.lib.stride_tricks.sliding_window_view(buffer, len(_TIME_LOW) + 1 + _MAX_FRACTION)
    window = windows[start + 1]
    ok &= np.all(window[:, :len(_TIME_LOW)] - _TIME_LOW <= _TIME_SPAN, axis=1)
    fraction = window[:, len(_TIME_LOW):]  # `.` and up to nine digits
    has_fraction = width > 22
    ok &= ~has_fraction | (fraction[:, 0] == ord("."))
    needed = np.arange(_MAX_FRACTION) < (width - 23)[:, None]
    ok &= np.all(~needed | (fraction[:, 1:] - np.uint8(ord("0")) <= 9), axis=1)
    return ok


def _code_fits(buffer: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Check that the response code in `[start, end)` has one to three digits."""
    length = end - start
    digits = np.lib.stride_tricks.sliding_window_view(buffer, _MAX_CODE_DIGITS)[start]
    needed = np.arange(_MAX_CODE_DIGITS) < length[:, None]
    ok = (length >= 1) & (length <= _MAX_CODE_DIGITS)
    ok &= np.all(~needed | (digits - np.uint8(ord("0")) <= 9), axis=1)
    return ok


def text_fields(chunk: Chunk, rows: np.ndarray) -> TextFields:
    """Find the fields of the lines `rows`, which fit `logscan.TEXT_PATTERN`.

    The pattern keeps whitespace out of the time and of every unquoted field,
    and quotes out of every field. So the first spaces after the request's
    opening quote and after its closing quote, and the last spaces of the
    line, separate fields, whatever the quoted free-text fields contain.
    """
    spaces = chunk.spaces
    delimiters = chunk.delimiters
    all_quotes = delimiters[chunk.buffer[delimiters] == QUOTE]
    start = chunk.starts[rows]
    end = chunk.ends[rows]
    quotes = all_quotes[np.searchsorted(all_quotes, start)[:, None] + np.arange(TEXT_QUOTES)]
    request = np.searchsorted(spaces, quotes[:, 0])  # the space after the method
    outcome = np.searchsorted(spaces, quotes[:, 1])  # the space before the code
    tail = np.searchsorted(spaces, end)  # one past the last space of the line
    return TextFields(
        start=start,
        outcome=(spaces[outcome] + 1, spaces[outcome + 3]),
        path=(spaces[request] + 1, spaces[request + 1]),
        authority=(quotes[:, 10] + 1, quotes[:, 11]),
        upstream_host=(quotes[:, 12] + 1, quotes[:, 13]),
        upstream_cluster=(spaces[tail - 6] + 1, spaces[tail - 5]),
        downstream_remote=(spaces[tail - 3] + 1, spaces[tail - 2]),
        route=(spaces[tail - 1] + 1, end),
    )


# The 16 bytes of an Arrow string view: the length, then either the value
# inline (up to 12 bytes) or a 4-byte prefix, the buffer index and the offset.
_VIEW = np.dtype({"names": ["length", "low", "high"], "formats": ["<i4", "<u8", "<u4"],
                  "offsets": [0, 4, 12], "itemsize": 16})
_ALL_64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def views(chunk: Chunk, start: np.ndarray, end: np.ndarray) -> pa.Array:
    """Return the byte ranges `[start, end)` of the chunk as an Arrow string view array.

    Values up to 12 bytes are copied into the views, as the format requires;
    longer ones point into the chunk. The ranges must hold whole UTF-8 characters.
    """
    length = end - start
    # Unaligned 8- and 4-byte reads at every byte of the chunk.
    low = np.ndarray((len(chunk.data) - 8,), "<u8", chunk.data, 0, (1,))[start]
    high = np.ndarray((len(chunk.data) - 4,), "<u4", chunk.data, 0, (1,))[start + 8]
    low_bits = (np.minimum(length, 8) * 8).astype(np.uint64)
    low_mask = np.where(length >= 8, _ALL_64, (np.uint64(1) << low_bits) - np.uint64(1))
    high_bits = (np.clip(length - 8, 0, 4) * 8).astype(np.uint64)
    high_mask = ((np.uint64(1) << high_bits) - np.uint64(1)).astype(np.uint32)

    layout = np.empty(len(start), _VIEW)
    layout["length"] = length
    long = length > _VIEW_INLINE
    layout["low"] = np.where(long, low & np.uint64(0xFFFFFFFF), low & low_mask)
    layout["high"] = np.where(long, start, high & high_mask)
    return pa.Array.from_buffers(pa.string_view(), len(start),
                                 [None, pa.py_buffer(layout), pa.py_buffer(chunk.data)])


def fixed(chunk: Chunk, start: np.ndarray, width: int) -> np.ndarray:
    """Return `width` bytes from each offset in `start` as a numpy bytes array (dtype `S<width>`)."""
    window = np.lib.stride_tricks.sliding_window_view(chunk.buffer, width)[start]
    return np.ascontiguousarray(window).view(f"S{width}").ravel()


def lines(chunk: Chunk, rows: np.ndarray) -> pa.Array:
    """Return the lines `rows` without their newline as an Arrow large string array."""
    return views(chunk, chunk.starts[rows], chunk.ends[rows]).cast(pa.large_string())
