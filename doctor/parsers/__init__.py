"""Pure parsers: each turns one `Document` into facts and parse problems.

A parser module exposes:

- `KIND`: the reader kind it produces, such as `"envoy-access-log"`;
- `sniff(doc) -> bool`: whether the document is of this kind, decided from
  its content, never from its file name;
- `parse(doc) -> ParseResult`: the facts, and a `ParseProblem` for every part
  it could not read. It never raises on malformed input.

`doctor.readers` tries the structured parsers in order and gives the first
that recognises a document the whole of it.
"""
