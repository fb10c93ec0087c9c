"""Every read of raw mail bytes: the split of header from body, the header fields, the bodies, the
shape checks.

split: where a header block ends (the one reading, the standard library's); fields: its fields,
read once, linear on folded lines; values: header values decoded (Message-IDs, addresses, RFC 2047);
bodies: the body decoder interface (mime: mail-parser for normal mail, stream: big mail straight
from the bytes); parse: the whole message as ParsedMessage; shape: the limits the gateway checks;
names: the header names. Importing this package loads nothing: mail-parser is loaded by the
first body decoded, so a reader of header fields (the worker) never pays for it.
"""
