"""The plan: the concrete namespaces, links, bridges, addresses, routes and neighbour entries a
scenario needs. Pure data made by pure functions, so it is tested without root and printed by
``vrlab plan`` before anything is built; :mod:`vrlab.net` is the only code that turns it into
kernel objects.

- :mod:`~vrlab.plan.model`: the plan's data (frozen dataclasses), imports no builder;
- :mod:`~vrlab.plan.naming`: the prefix every kernel object carries, names and MACs;
- :mod:`~vrlab.plan.addressing`: the testbed's subnets and host numbers;
- :mod:`~vrlab.plan.builder`: accumulates plan objects for one scenario;
- :mod:`~vrlab.plan.wiring`: the paper's I/O modes as plan objects (:func:`make_plan`);
- :mod:`~vrlab.plan.shared`: the ``shared`` scenario (the platform as SUT);
- :mod:`~vrlab.plan.transforms`: plan-to-plan changes an engine needs.

This file imports nothing, so importing :mod:`vrlab.plan.naming` (as the ledger does) pulls in
no builder.
"""
