"""Connectors bring documents in from where companies keep them.

Each one follows Onyx's capability interfaces (see README.md here): `load()` yields every
document (or a `Failure` value for one that can't be read), `slim()` yields only ids, for
pruning deletions without reading content.
"""
