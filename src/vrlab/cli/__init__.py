"""The ``vrlab`` command: one module per group of commands, the console helpers apart."""
