"""The results database: one SQLite file that outlives any single command.

Each trial is committed the moment it finishes, so a sweep that is interrupted (Ctrl-C, a crashed
agent, a reboot) keeps everything it measured. Each run keeps the scenario text, the machine
description and the placement, so a figure can be redrawn, or questioned, months later without
guessing what produced it. Plain stdlib ``sqlite3`` keeps the file readable with any SQLite tool;
docs/schema.md describes the tables.

- :mod:`~vrlab.store.schema`: the file's tables, identity and version, and opening it safely;
- :mod:`~vrlab.store.rows`: what a query gives back (runs, trials, searches, sweep points), pure
  data that plots and claims use without touching SQLite;
- :mod:`~vrlab.store.codec`: column encodings, and database rows turned into those dataclasses;
- :mod:`~vrlab.store.db`: :class:`~vrlab.store.db.Store`, which writes and queries;
- :mod:`~vrlab.store.export`: stored trials as one flat CSV table.

This file imports nothing, so importing :mod:`vrlab.store.rows` (as the paper's claims do)
opens no database code.
"""
