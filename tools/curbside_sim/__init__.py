"""The fleet simulator (``curbside sim``): who the simulated cars are, where they go, and one
process that runs them all, with the real agent code, against a real API server.

Why this package exists: Curbside's claims (work moves within a second of a departure, zero
writes for a car that sits still, 10,000 cars on a laptop) can only be tested against a fleet
that behaves like one: commuters who leave at 07:40 give or take a few minutes, cars that
charge overnight, errands, cars that sleep for days, cars that vanish without a word. BOINC's
client emulator models on/off availability, not mobility, so this package models both.

Pure and deterministic (same seed, same traces):

- ``profiles``: each car's fixed habits (its archetype, battery, chargers, networks, usual
  departure time) and its trips for a given day, drawn from seeded generators keyed on
  (seed, car, day), so a car's Tuesday does not depend on which other cars exist.
- ``mobility``: ``Fleet`` turns trips into a stream of ``signals.reading.Reading`` changes
  per car (door, key and seat a few minutes before each departure, charging, sleep, network,
  battery steps) and merges them for the whole fleet on an accelerated clock.
- ``pace``: a simulated clock that runs fast through quiet nights and slower through rush hours.

The process (``runner``, run as ``curbside sim``): ``enroll`` (a VehicleNode per car),
``driver`` (steps ``curbside_agent`` agents from mobility events), and, for real work on
simulated cars, ``workers`` (the real worker per inference pod, killed when its car drives
away), ``podspec`` and ``tokens`` (what a kubelet reads from a pod and the projected token it
requests) and ``cheats`` (cars that lie, for the trust checks).
"""
