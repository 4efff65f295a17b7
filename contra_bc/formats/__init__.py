"""On-disk formats. One module per format: a writer, a reader, a validator, a version.

docs/formats.md describes the same formats for people.
"""
