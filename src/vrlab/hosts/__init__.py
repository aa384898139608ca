"""Beyond one host: the testbed file that names the machines (TG, SUT, TS) and the cables
between them, the SSH layer that reaches them, their checks, and simulated hosts for tests."""
