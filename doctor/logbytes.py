"""Byte-level reading of access-log chunks with numpy.

A chunk is a run of complete lines as UTF-8 bytes. One numpy pass finds the
offsets of its delimiters: quotes, `!`, backslashes, and every byte outside
printable ASCII, newlines included. Another finds its spaces. From these
offsets `text_lines` checks Istio's TEXT format and `json_lines` the compact,
key-sorted JSON that Envoy's `json_format` writes, line by line and without a
regular expression, and both take the byte range of every field the summary
needs. Fields become Arrow string views into the chunk, so no field is
copied before it is hashed.

A TEXT line has exactly 14 delimiters before its newline, all quotes, and a
fixed number of spaces between some of them. So the TEXT check accepts a
subset of the lines that `logscan.TEXT_PATTERN` matches: printable ASCII
without `!` or `\\`, and a response code of one to three digits. The JSON
check accepts a subset of `logscan.JSON_PATTERN` in the same way. The
regular expressions and the tolerant parser read every other line, and
`text_fields` finds the fields of the other lines that TEXT_PATTERN matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa

NEWLINE = ord("\n")
SPACE = ord(" ")
QUOTE = ord('"')
BACKSLASH = ord("\\")
# Zero bytes after the last newline, so that fixed-width reads near the end stay in the buffer.
_PADDING = 32
# Delimiters are the bytes below `#` (controls, `!` and the quote) and above `~`, but not
# the space, and the backslash, which starts an escape in JSON strings.
_FIRST_PLAIN = ord("#")
_LAST_PLAIN = ord("~")

# Quotes on a line in Istio's TEXT format: the request line and six quoted fields.
TEXT_QUOTES = 14
# Structural spaces of a TEXT line. Eight follow `[TIME]`, separate
# `METHOD PATH PROTOCOL`, and surround `CODE FLAGS DETAILS TERMINATION_DETAILS`.
# Five surround the byte and time counts after the transport failure reason.
# Two follow the request id and the authority, and the last six separate
# `CLUSTER UPSTREAM_LOCAL DOWNSTREAM_LOCAL DOWNSTREAM_REMOTE SNI ROUTE`.
_SIZE_SPACES = 5
_LAST_QUOTE_SPACES = 6
# Quotes 5 to 12 close and open quoted fields separated by one space.
_SEPARATED_QUOTES = (5, 7, 9, 11)
# Quotes 10 and 12 open the authority and the upstream host, quoted but without spaces.
_TOKEN_QUOTES = (10, 12)


def _touching(flags: str) -> tuple[np.uint64, np.uint64]:
    """Turn up to 8 flags into (mask, value) of the 8 bytes of `Chunk.touching` they cover."""
    mask = value = 0
    for place, flag in enumerate(flags):
        mask |= 0xFF << (8 * place)
        value |= int(flag) << (8 * place)
    return np.uint64(mask), np.uint64(value)


# Whether each structural special of a TEXT line touches the next special
# ("1") or a token of at least one byte lies between them ("0"), in the order
# of the specials. From the space after `[TIME]` to the quote that opens the
# transport failure reason (ten flags, read as eight and two):
_HEAD_TOUCHING = (_touching("10001000"), _touching("01"))
# From the quote that closes the reason, over the five spaces around the counts:
_SIZE_TOUCHING = _touching("100001")
# A quote that closes a field, the one space, and the quote that opens the next:
_PAIR_TOUCHING = _touching("11")
# From the last quote over the six spaces before the cluster, addresses, SNI and route:
_TAIL_TOUCHING = _touching("1000000")

_ALL_64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_HIGH_NIBBLES = np.uint64(0xF0F0F0F0F0F0F0F0)
_THREES = np.uint64(0x3030303030303030)
_SIXES = np.uint64(0x0606060606060606)
_NO_BYTES = (np.uint64(0), np.uint64(0))


def _word_template(template: str) -> tuple[np.uint64, tuple[np.uint64, np.uint64]]:
    """Turn 8 characters, `d` for a digit, `?` for any byte, else a literal, into word masks."""
    digits = mask = value = 0
    for place, character in enumerate(template):
        if character == "d":
            digits |= 0xFF << (8 * place)
        elif character != "?":
            mask |= 0xFF << (8 * place)
            value |= ord(character) << (8 * place)
    return np.uint64(digits), (np.uint64(mask), np.uint64(value))


# `YYYY-MM-DDTHH:MM:SS` in its three 8-byte words: (digits, literals) of each.
_TIME_WORDS = tuple(_word_template(template) for template in ("dddd-dd-", "ddTdd:dd", ":dd?????"))
# Offsets in a 32-byte block that starts at the delimiter before the time.
_SECOND_TENS = 18  # the tens of seconds, which are 0 to 5
_FRACTION_DOT = 20  # the dot before a fraction of a second
_BYTE = np.uint64(8)
_SEVEN_BYTES = np.uint64(56)
_LOW_BYTE = np.uint64(0xFF)

# The keys of Istio's JSON access-log format in the sorted order Envoy's `json_format` writes them.
JSON_KEYS = (
    "authority", "bytes_received", "bytes_sent", "connection_termination_details",
    "downstream_local_address", "downstream_remote_address", "duration", "method", "path",
    "protocol", "request_id", "requested_server_name", "response_code",
    "response_code_details", "response_flags", "route_name", "start_time",
    "upstream_cluster", "upstream_host", "upstream_local_address", "upstream_service_time",
    "upstream_transport_failure_reason", "user_agent", "x_forwarded_for",
)


def _key_template(keys: tuple[str, ...], start: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the bytes `[start, start + width)` of each key, and masks of the bytes that exist.

    Both are laid out as one row of little-endian 8-byte words for all keys.
    """
    values, masks = bytearray(), bytearray()
    for key in keys:
        part = key.encode("ascii")[start:start + width]
        values += part.ljust(width, b"\0")
        masks += (b"\xff" * len(part)).ljust(width, b"\0")
    return np.frombuffer(bytes(values), "<u8"), np.frombuffer(bytes(masks), "<u8")


# `Chunk.blocks` reads 32 bytes at once: a line's time with its delimiters, or a
# JSON key (every key but the longest fits).
_BLOCK = 32
_KEY_LENGTHS = np.array([len(key) for key in JSON_KEYS])
_KEY_HEADS = _key_template(JSON_KEYS, 0, _BLOCK)
_LONG_KEY_SLOTS = np.flatnonzero(_KEY_LENGTHS > _BLOCK)
_LONG_KEY_TAILS = _key_template(tuple(JSON_KEYS[slot] for slot in _LONG_KEY_SLOTS), _BLOCK, 8)
# The keys whose values the summary reads, and their slots in JSON_KEYS.
_READ_KEYS = ("authority", "downstream_remote_address", "path", "response_code", "response_flags",
              "route_name", "start_time", "upstream_cluster", "upstream_host")
_READ_SLOTS = np.array([JSON_KEYS.index(key) for key in _READ_KEYS])
_NULL = np.uint32(int.from_bytes(b"null", "little"))
_MAX_NUMBER = 15
_MAX_FRACTION = 9
_MAX_CODE_DIGITS = 3
_VIEW_INLINE = 12  # a string view stores values up to this many bytes inline
_PORT_WINDOW = 8  # the last bytes of an address searched for `:PORT`


@dataclass(frozen=True)
class Chunk:
    """Offsets of the lines, delimiters and spaces of a chunk.

    `data` is the chunk, a newline after its last line and zero padding, and
    `buffer` is the same bytes as a numpy array. Line `i` is
    `data[starts[i]:ends[i]]`, and `ends[i]` is its newline. Its delimiters are
    `delimiters[first_delimiter[i]:first_delimiter[i] + delimiter_count[i]]`.
    `specials` holds the offsets of the spaces and delimiters together, and
    `delimiter_specials` the place of each delimiter among them, so the
    specials between two delimiters are known without a search.
    """

    data: bytes
    buffer: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    delimiters: np.ndarray
    first_delimiter: np.ndarray
    delimiter_count: np.ndarray
    only_quotes: np.ndarray  # per line: every delimiter before the newline is a quote
    kinds: np.ndarray  # the byte at each delimiter
    specials: np.ndarray
    delimiter_specials: np.ndarray
    ascii: bool  # True when no byte is above 0x7f, found among the specials, which include them

    def __len__(self) -> int:
        return len(self.starts)

    @cached_property
    def touching(self) -> np.ndarray:
        """Return, per special, 1 when the next special is the next byte, else 0, then 8 zeros."""
        touching = np.zeros(len(self.specials) + 7, np.uint8)
        np.equal(self.specials[1:] - self.specials[:-1], 1, out=touching[:len(self.specials) - 1].view(bool))
        return touching

    def touching_words(self, offsets: np.ndarray) -> np.ndarray:
        """Return the flags of `touching` from each offset on, 8 at a time as little-endian integers."""
        flags = self.touching
        return np.ndarray((len(flags) - 7,), "<u8", flags, 0, (1,))[offsets]

    def touching_pairs(self, offsets: np.ndarray) -> np.ndarray:
        """Return 16 flags of `touching` from each offset on, as two little-endian integers (last axis)."""
        flags = self.touching
        view = np.ndarray((len(flags) - 15,), "V16", flags, 0, (1,))
        return view[offsets].view("<u8").reshape(len(offsets), 2)

    @cached_property
    def spaces(self) -> np.ndarray:
        """Return the offsets of the spaces."""
        is_space = np.ones(len(self.specials), bool)
        is_space[self.delimiter_specials] = False
        return self.specials[is_space]

    def line(self, index: int) -> str:
        return self.data[self.starts[index]:self.ends[index]].decode("utf-8")

    def words(self, offsets: np.ndarray) -> np.ndarray:
        """Return the 8 bytes at each offset as a little-endian integer (unaligned reads)."""
        return np.ndarray((len(self.data) - 8,), "<u8", self.data, 0, (1,))[offsets]

    def blocks(self, offsets: np.ndarray, size: int = _BLOCK) -> np.ndarray:
        """Return the `size` bytes at each offset as little-endian 8-byte integers (last axis).

        numpy copies each unaligned item with one memmove, so a gather of 13,000
        16-byte items took 60 µs here, about as long as one of 8-byte items.
        """
        view = np.ndarray((len(self.data) - size,), f"V{size}", self.data, 0, (1,))
        return view[offsets].view("<u8").reshape(*np.shape(offsets), size // 8)


def padding() -> bytes:
    """Return the bytes a chunk needs after its last line: a newline and zeros."""
    return b"\n" + bytes(_PADDING)


def read_chunk(data: bytes | bytearray, padded: bool = False) -> Chunk:
    """Find the lines, delimiters and spaces of `data` (lines split at `\\n` only).

    With `padded`, `data` already ends with `padding()`, so it is not copied.
    One search finds the spaces and delimiters together. numpy's search costs
    about the same whatever it finds, so a second search for the spaces would
    double that cost.
    """
    body = data if padded else data + padding()
    buffer = np.frombuffer(body, np.uint8)
    shifted = np.subtract(buffer, np.uint8(_FIRST_PLAIN))
    special = np.greater(shifted, np.uint8(_LAST_PLAIN - _FIRST_PLAIN), out=shifted.view(bool))
    if b"\\" in body:  # a byte search, much cheaper than a numpy pass when there is none
        special |= buffer == BACKSLASH
    specials = np.flatnonzero(special)
    special_kinds = buffer[specials]
    delimiter_specials = np.flatnonzero(special_kinds != SPACE)
    delimiters = specials[delimiter_specials]
    kinds = special_kinds[delimiter_specials]
    newlines = np.flatnonzero(kinds == NEWLINE)
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
        only_quotes=_only_quotes(kinds, newlines),
        kinds=kinds,
        specials=specials,
        delimiter_specials=delimiter_specials,
        ascii=bool(special_kinds.max() <= 0x7F),  # a pass over the specials, not the whole chunk
    )


def _only_quotes(kinds: np.ndarray, newlines: np.ndarray) -> np.ndarray:
    """Return, per line, True when its delimiters before the newline are all quotes."""
    only = np.ones(len(newlines), bool)
    inside = kinds[:newlines[-1]]  # the padding after the last newline is in no line
    others = np.flatnonzero((inside != QUOTE) & (inside != NEWLINE))
    if len(others):
        only[np.searchsorted(newlines, others)] = False
    return only


@dataclass(frozen=True)
class LineFields:
    """Byte ranges `(start, end)` of the fields of TEXT or JSON lines, one element per line.

    `minute` is not a range but a pair of words. `_PAIRS` names every field made of two arrays.

    In TEXT lines `outcome` is `CODE FLAGS DETAILS`, three tokens with single
    spaces. In JSON lines it runs from the response code's value to the
    response flags' value, and every range of a string value includes its quotes.
    """

    start: np.ndarray  # the byte before the start time: TEXT's `[` or the quote in JSON
    minute: tuple[np.ndarray, np.ndarray]  # the 16 bytes `YYYY-MM-DDTHH:MM` as two 8-byte words
    outcome: tuple[np.ndarray, np.ndarray]
    path: tuple[np.ndarray, np.ndarray]
    authority: tuple[np.ndarray, np.ndarray]
    upstream_host: tuple[np.ndarray, np.ndarray]
    upstream_cluster: tuple[np.ndarray, np.ndarray]
    downstream_remote: tuple[np.ndarray, np.ndarray]
    route: tuple[np.ndarray, np.ndarray]

    _PAIRS = ("minute", "outcome", "path", "authority", "upstream_host", "upstream_cluster",
               "downstream_remote", "route")

    def select(self, rows: np.ndarray) -> LineFields:
        return LineFields(self.start[rows], *(
            (getattr(self, name)[0][rows], getattr(self, name)[1][rows]) for name in self._PAIRS))

    def join(self, other: LineFields, order: np.ndarray) -> LineFields:
        """Return these fields followed by `other`'s, then taken in `order`."""
        def both(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
            return np.concatenate((mine, theirs))[order]

        return LineFields(both(self.start, other.start), *(
            (both(getattr(self, name)[0], getattr(other, name)[0]),
             both(getattr(self, name)[1], getattr(other, name)[1])) for name in self._PAIRS))


def text_lines(chunk: Chunk) -> tuple[np.ndarray, LineFields]:
    """Find the lines that fit Istio's TEXT format (the subset the module names).

    Returns their indices and their fields. Arrays of places are laid out one
    row per place and one column per line, so each place is contiguous.
    """
    candidates = np.flatnonzero((chunk.delimiter_count == TEXT_QUOTES) & chunk.only_quotes)
    if not len(candidates):
        return candidates, _no_fields()
    at_quote = chunk.first_delimiter[candidates] + np.arange(TEXT_QUOTES)[:, None]
    quote_special = chunk.delimiter_specials[at_quote]
    newline_special = chunk.delimiter_specials[at_quote[-1] + 1]

    # Every special of a line between two of its quotes is a space, so the
    # distance between the quotes' places among the specials counts the spaces
    # between them. Quoted free text may contain any number of spaces. Every
    # other stretch contains exactly the spaces of the format.
    previous_newline = np.where(at_quote[0] > 0, chunk.delimiter_specials[at_quote[0] - 1], -1)
    ok = quote_special[0] - previous_newline == 2  # `[TIME] "`
    ok &= quote_special[1] - quote_special[0] == 3  # `"METHOD PATH PROTOCOL"`
    ok &= quote_special[2] - quote_special[1] == 6  # `" CODE FLAGS DETAILS TERMINATION "`
    ok &= quote_special[4] - quote_special[3] == 1 + _SIZE_SPACES
    for closing in _SEPARATED_QUOTES:
        ok &= quote_special[closing + 1] - quote_special[closing] == 2
    for opening in _TOKEN_QUOTES:
        ok &= quote_special[opening + 1] - quote_special[opening] == 1  # no space inside
    ok &= newline_special - quote_special[13] == 1 + _LAST_QUOTE_SPACES
    if not ok.all():
        # Only lines with these counts have all their spaces inside the line.
        counted = np.flatnonzero(ok)
        candidates, at_quote, quote_special = candidates[counted], at_quote[:, counted], quote_special[:, counted]

    # With the spaces counted, a token is empty exactly where two specials
    # touch. A quote sits right next to its space exactly where the two touch.
    touching = chunk.touching_words
    first_space = quote_special[0] - 1
    head = chunk.touching_pairs(first_space)  # one gather for the 16 flags of the head
    ok = _flags_fit(head[:, 0], _HEAD_TOUCHING[0])
    ok &= _flags_fit(head[:, 1], _HEAD_TOUCHING[1])
    ok &= _flags_fit(touching(quote_special[3]), _SIZE_TOUCHING)
    ok &= _flags_fit(touching(quote_special[13]), _TAIL_TOUCHING)
    for closing in _SEPARATED_QUOTES:
        ok &= _flags_fit(touching(quote_special[closing]), _PAIR_TOUCHING)

    specials = chunk.specials
    start = chunk.starts[candidates]
    after_time = specials[first_space]
    request = specials[quote_special[0] + np.arange(1, 3)[:, None]]  # after METHOD and PATH
    outcome = specials[quote_special[1] + np.arange(1, 5)[:, None]]  # before CODE to after DETAILS
    tail = specials[quote_special[13] + np.arange(1, 1 + _LAST_QUOTE_SPACES)[:, None]]
    quoted = chunk.delimiters[at_quote[10:]]  # the authority's and the upstream host's quotes
    stamp_fits, minute = _stamp_fits(chunk, start, after_time - start - 2, b"[]")
    ok &= stamp_fits
    ok &= _code_fits(chunk, outcome[0] + 1, outcome[1])

    rows = candidates[ok]
    selection = _selection(ok)
    fields = LineFields(
        start=start[selection],
        minute=(minute[0][selection], minute[1][selection]),
        outcome=(outcome[0, selection] + 1, outcome[3, selection]),
        path=(request[0, selection] + 1, request[1, selection]),
        authority=(quoted[0, selection] + 1, quoted[1, selection]),
        upstream_host=(quoted[2, selection] + 1, quoted[3, selection]),
        upstream_cluster=(tail[0, selection] + 1, tail[1, selection]),
        downstream_remote=(tail[3, selection] + 1, tail[4, selection]),
        route=(tail[5, selection] + 1, chunk.ends[rows]),
    )
    return rows, fields


def _selection(ok: np.ndarray) -> np.ndarray | slice:
    """Return an index for the elements where `ok` is True: a slice of all when none failed."""
    return slice(None) if ok.all() else ok


def _flags_fit(words: np.ndarray, flags: tuple[np.uint64, np.uint64]) -> np.ndarray:
    mask, value = flags
    return (words & mask) == value


def _stamp_fits(chunk: Chunk, start: np.ndarray, length: np.ndarray,
                delimiters: bytes) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Check `YYYY-MM-DDTHH:MM:SS(.fraction)Z` of `length` bytes between two delimiters.

    `start` is the offset of the opening delimiter, `[` in TEXT or a quote in
    JSON, and `delimiters` names the opening and the closing one. One 32-byte
    read per line covers both delimiters and the time, whose 8-byte words are
    checked one at a time. Returns which lines fit and the first 16 bytes of
    their time, the minute, as two words.
    """
    block = chunk.blocks(start)
    first, second, third, fourth = (block[:, index] for index in range(4))
    # The time starts one byte into the block.
    time_words = [(low >> _BYTE) | (high << _SEVEN_BYTES)
                  for low, high in ((first, second), (second, third), (third, fourth))]
    opening, closing = delimiters
    ok = (length == 20) | ((length >= 22) & (length <= 21 + _MAX_FRACTION))
    ok &= (first & _LOW_BYTE) == opening
    ok &= _block_byte(third, fourth, length) == ord("Z")
    ok &= _block_byte(third, fourth, length + 1) == closing
    for word, (digits, literals) in zip(time_words, _TIME_WORDS):
        ok &= _word_fits(word, digits, literals)
    ok &= _block_byte(third, fourth, _SECOND_TENS) <= ord("5")

    # `.` and one to nine digits, checked as all digits with the places past them masked.
    fraction_digits = np.clip(length - 21, 0, _MAX_FRACTION)
    ok &= (fraction_digits == 0) | (_block_byte(third, fourth, _FRACTION_DOT) == ord("."))
    # The first eight digits are bytes 21 to 28: the top three of the third word, the rest from the fourth.
    fraction = (third >> np.uint64(40)) | (fourth << np.uint64(24))
    ok &= _word_fits(fraction, _byte_mask(np.minimum(fraction_digits, 8)), _NO_BYTES)
    ninth = _block_byte(third, fourth, _FRACTION_DOT + 9)
    ok &= (fraction_digits < 9) | (ninth - np.uint64(ord("0")) <= 9)
    return ok, (time_words[0], time_words[1])


def _block_byte(third: np.ndarray, fourth: np.ndarray, place: np.ndarray | int) -> np.ndarray:
    """Return byte `place` (16 to 31, clipped) of each line's block, from its last two words."""
    place = np.clip(place, 16, 31)
    shift = ((place & 7) * 8).astype(np.uint64)
    return np.where(place < 24, third >> shift, fourth >> shift) & _LOW_BYTE


def _byte_mask(count: np.ndarray) -> np.ndarray:
    """Return integers whose first `count` bytes (0 to 8) are 0xFF, little-endian."""
    bits = (count * 8).astype(np.uint64)
    return np.where(count >= 8, _ALL_64, (np.uint64(1) << np.minimum(bits, 63)) - np.uint64(1))


def _word_fits(words: np.ndarray, digits: np.ndarray | np.uint64,
               literals: tuple[np.uint64, np.uint64]) -> np.ndarray:
    """Check 8 bytes at once: ASCII digits where `digits` has 0xFF, the literal bytes elsewhere.

    `literals` is (mask, value): the bytes under the mask must equal the value.
    A byte is a digit when its high nibble is 3 and adding 6 keeps it there
    (0x30 to 0x39), and a digit plus 6 never carries into the next byte.
    """
    high = digits & _HIGH_NIBBLES
    threes = digits & _THREES
    ok = (words & high) == threes
    ok &= ((words + (digits & _SIXES)) & high) == threes
    mask, value = literals
    return ok & ((words & mask) == value)


def _code_fits(chunk: Chunk, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Check that the response code in `[start, end)` has one to three digits."""
    length = end - start
    ok = (length >= 1) & (length <= _MAX_CODE_DIGITS)
    return ok & _word_fits(chunk.words(start), _byte_mask(np.clip(length, 0, 3)), _NO_BYTES)


def json_lines(chunk: Chunk, excluded: np.ndarray) -> tuple[np.ndarray, LineFields]:
    """Find the lines that fit `logscan.JSON_PATTERN`, except `excluded` ones; return them and their fields.

    The check accepts a subset of the pattern: strings of printable ASCII
    without `!`, and numbers of at most 15 characters. A line's delimiters are
    then exactly the quotes of its keys and string values. A string is a value
    when the one byte before it is a colon, else a key. The bytes between
    strings must be `{`, `,` or `:`, or a colon, a number or null and a comma.
    """
    counts = chunk.delimiter_count
    lines = ~excluded & chunk.only_quotes & (counts % 2 == 0)
    lines &= (counts >= 2 * len(JSON_KEYS)) & (counts <= 4 * len(JSON_KEYS))
    candidates = np.flatnonzero(lines)
    if not len(candidates):
        return candidates, _no_fields()

    buffer = chunk.buffer
    # Per delimiter, newlines included; the padding after the last line is in no line.
    in_candidate = np.zeros(len(chunk.delimiters), bool)
    in_candidate[:int(counts.sum()) + len(counts)] = np.repeat(lines, counts + 1)
    quotes = chunk.delimiters[in_candidate & (chunk.kinds == QUOTE)]
    opening, closing = quotes[0::2], quotes[1::2]
    strings_per_line = counts[candidates] // 2
    first_of_line = np.cumsum(strings_per_line) - strings_per_line
    start = chunk.starts[candidates]
    end = chunk.ends[candidates]

    # The bytes between the previous string and this one.
    previous_close = np.empty_like(closing)
    previous_close[1:] = closing[:-1]
    previous_close[first_of_line] = start[:] - 1
    is_first = np.zeros(len(opening), bool)
    is_first[first_of_line] = True
    between = opening - previous_close - 1
    byte_before = buffer[opening - 1]
    is_value = ~is_first & (between == 1) & (byte_before == ord(":"))
    after_value = np.zeros(len(opening), bool)
    after_value[1:] = is_value[:-1]
    after_value[first_of_line] = False

    good = ~(is_value & after_value)  # a value follows a key
    good[first_of_line] &= (between[first_of_line] == 1) & (buffer[start] == ord("{"))
    key_after_value = ~is_first & ~is_value & after_value
    good &= ~key_after_value | ((between == 1) & (byte_before == ord(",")))
    after_scalar = np.flatnonzero(~is_first & ~is_value & ~after_value)  # a key after a key's scalar
    good[after_scalar] &= (buffer[previous_close[after_scalar] + 1] == ord(":")) & (
        byte_before[after_scalar] == ord(",")) & _scalar_fits(
        chunk, previous_close[after_scalar] + 2, opening[after_scalar] - 1)

    # Per line (every line has at least 24 strings, so no segment is empty).
    ok = ~np.logical_or.reduceat(~good, first_of_line)
    ok &= strings_per_line - np.add.reduceat(is_value, first_of_line) == len(JSON_KEYS)
    # The end of the line: `}` after a string value, or `:SCALAR}` after a key.
    last = first_of_line + strings_per_line - 1
    ends_with_value = is_value[last]
    ok &= buffer[end - 1] == ord("}")
    ok &= ~ends_with_value | (end == closing[last] + 2)
    ok &= ends_with_value | ((buffer[closing[last] + 1] == ord(":")) & _scalar_fits(
        chunk, closing[last] + 2, end - 1))
    if not ok.any():
        return candidates[ok], _no_fields()

    # Keys of the lines left, one row per line and one column per key slot.
    selected = np.flatnonzero(ok)
    keys = np.flatnonzero(np.repeat(ok, strings_per_line) & ~is_value).reshape(-1, len(JSON_KEYS))
    key_start = opening[keys] + 1
    fits = np.all(closing[keys] - key_start == _KEY_LENGTHS, axis=1)
    heads = chunk.blocks(key_start).reshape(len(keys), -1)
    values, masks = _KEY_HEADS
    heads &= masks
    fits &= np.all(heads == values, axis=1)
    values, masks = _LONG_KEY_TAILS
    fits &= np.all(chunk.words(key_start[:, _LONG_KEY_SLOTS] + _BLOCK) & masks == values, axis=1)
    keys = keys.T  # one row per key slot from here on

    # The value of each key the summary reads: the next string when it is a
    # value, else the scalar after the colon.
    keys = keys[_READ_SLOTS]
    following = np.minimum(keys + 1, len(opening) - 1)
    value_is_string = is_value[following] & (keys < last[selected])
    scalar_end = np.where(keys == last[selected], end[selected] - 1, opening[following] - 1)
    value_start = np.where(value_is_string, opening[following], closing[keys] + 2)
    value_end = np.where(value_is_string, closing[following] + 1, scalar_end)
    time_row = _READ_KEYS.index("start_time")
    fits &= value_is_string[time_row]
    stamp_fits, minute = _stamp_fits(chunk, value_start[time_row],
                                     value_end[time_row] - value_start[time_row] - 2, b'""')
    fits &= stamp_fits
    rows = candidates[selected[fits]]
    selection = _selection(fits)
    value_start, value_end = value_start[:, selection], value_end[:, selection]

    def value(name: str) -> tuple[np.ndarray, np.ndarray]:
        row = _READ_KEYS.index(name)
        return value_start[row], value_end[row]

    fields = LineFields(
        start=value("start_time")[0],
        minute=(minute[0][selection], minute[1][selection]),
        outcome=(value("response_code")[0], value("response_flags")[1]),
        path=value("path"),
        authority=value("authority"),
        upstream_host=value("upstream_host"),
        upstream_cluster=value("upstream_cluster"),
        downstream_remote=value("downstream_remote_address"),
        route=value("route_name"),
    )
    return rows, fields


def _no_fields() -> LineFields:
    empty = np.zeros(0, np.int64)
    return LineFields(empty, *((empty, empty) for _ in LineFields._PAIRS))


def _scalar_fits(chunk: Chunk, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Check that `[start, end)` is `null` or a JSON integer of 1 to 15 characters.

    The first 8 bytes are read once: they hold `null`, the sign, and the
    first digits. The few longer numbers read 8 more bytes.
    """
    length = end - start
    word = chunk.words(start)
    is_null = (length == 4) & ((word & np.uint64(0xFFFFFFFF)) == _NULL)
    negative = (word & np.uint64(0xFF)) == ord("-")
    digits = word >> (negative.astype(np.uint64) * np.uint64(8))
    digit_count = length - negative
    number = (digit_count >= 1) & (length <= _MAX_NUMBER)
    number &= (digit_count == 1) | ((digits & np.uint64(0xFF)) != ord("0"))
    in_word = np.clip(np.minimum(digit_count, 8 - negative), 0, 8)
    number &= _word_fits(digits, _byte_mask(in_word), _NO_BYTES)
    longer = np.flatnonzero(digit_count > in_word)
    number[longer] &= _word_fits(chunk.words(start[longer] + 8),
                                 _byte_mask(np.clip(digit_count[longer] - in_word[longer], 0, 8)), _NO_BYTES)
    return is_null | number


def text_fields(chunk: Chunk, rows: np.ndarray) -> LineFields:
    """Find the fields of the lines `rows`, which fit `logscan.TEXT_PATTERN`.

    The pattern keeps whitespace out of the time and of every unquoted field,
    and quotes out of every field. So the first spaces after the request's
    opening quote and after its closing quote, and the last spaces of the
    line, separate fields, whatever the quoted free-text fields contain.
    """
    spaces = chunk.spaces
    all_quotes = chunk.delimiters[chunk.kinds == QUOTE]
    start = chunk.starts[rows]
    end = chunk.ends[rows]
    quotes = all_quotes[np.searchsorted(all_quotes, start)[:, None] + np.arange(TEXT_QUOTES)]
    request = np.searchsorted(spaces, quotes[:, 0])  # the space after the method
    outcome = np.searchsorted(spaces, quotes[:, 1])  # the space before the code
    tail = np.searchsorted(spaces, end)  # one past the last space of the line
    return LineFields(
        start=start,
        minute=(chunk.words(start + 1), chunk.words(start + 9)),
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


def views(chunk: Chunk, start: np.ndarray, end: np.ndarray) -> pa.Array:
    """Return the byte ranges `[start, end)` of the chunk as an Arrow string view array.

    Values up to 12 bytes are copied into the views, as the format requires,
    and longer ones point into the chunk. Each range must contain whole UTF-8
    characters.
    """
    length = end - start
    words = chunk.blocks(start, 16)
    low = words[:, 0]
    high = words[:, 1]
    low_bits = (np.minimum(length, 8) * 8).astype(np.uint64)
    low_mask = np.where(length >= 8, _ALL_64, (np.uint64(1) << low_bits) - np.uint64(1))
    high_bits = (np.clip(length - 8, 0, 4) * 8).astype(np.uint64)
    high_mask = (np.uint64(1) << high_bits) - np.uint64(1)

    layout = np.empty(len(start), _VIEW)
    layout["length"] = length
    long = length > _VIEW_INLINE
    layout["low"] = np.where(long, low & np.uint64(0xFFFFFFFF), low & low_mask)
    # As int64: numpy turns a mix of int64 and uint64 into float64.
    layout["high"] = np.where(long, start, (high & high_mask).view(np.int64))
    return pa.Array.from_buffers(pa.string_view(), len(start),
                                 [None, pa.py_buffer(layout), pa.py_buffer(chunk.data)])


def strip_ports(chunk: Chunk, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut `:PORT` off addresses, as `logscan.caller_of` does, where PORT is 1 to 7 ASCII digits.

    Returns the new ends and which addresses were cut. The others are left
    for `caller_of`: those without a colon in their last 8 bytes, with a
    longer port, or with no host before the colon.
    """
    window_start = np.maximum(end - _PORT_WINDOW, 0)
    window = np.lib.stride_tricks.sliding_window_view(chunk.buffer, _PORT_WINDOW)[window_start]
    places = window_start[:, None] + np.arange(_PORT_WINDOW)
    inside = places < end[:, None]
    colon = (window == ord(":")) & (places > start[:, None]) & inside
    last_colon = _PORT_WINDOW - 1 - np.argmax(colon[:, ::-1], axis=1)
    host_end = window_start + last_colon
    after = (np.arange(_PORT_WINDOW) > last_colon[:, None]) & inside
    digits = window - np.uint8(ord("0")) <= 9
    stripped = colon.any(axis=1) & (host_end < end - 1)
    stripped &= ~np.any(after & ~digits, axis=1)
    return np.where(stripped, host_end, end), stripped


def fixed(chunk: Chunk, start: np.ndarray, width: int) -> np.ndarray:
    """Return `width` bytes from each offset in `start` as a numpy bytes array (dtype `S<width>`)."""
    window = np.lib.stride_tricks.sliding_window_view(chunk.buffer, width)[start]
    return np.ascontiguousarray(window).view(f"S{width}").ravel()


def lines(chunk: Chunk, rows: np.ndarray) -> pa.Array:
    """Return the lines `rows` without their newline as an Arrow large string array."""
    return views(chunk, chunk.starts[rows], chunk.ends[rows]).cast(pa.large_string())
